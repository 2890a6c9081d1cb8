"""Minting, listing, renaming, revoking and resolving API tokens.

Lookups are cached in Redis under the token's SHA-256 (never the token itself)
for at most a minute; revoking deletes the entry, so every worker sees a revoked
token fail on its next call. With Redis down every lookup goes to the database.
`last_used_at` is written at most once a minute per token.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import redis
from flask import current_app
from sqlalchemy import func, select

from api.audit.service import Client, record_event
from api.auth.models import User
from api.db_types import utcnow
from api.errors import Conflict, NotFound, Unauthorized
from api.extensions import db, redis_client
from api.tokens.format import generate_token, has_valid_checksum, hash_token
from api.tokens.models import ApiToken

MAX_LIVE_TOKENS = 20
CACHE_KEY = "mg:apitoken:{}"
USED_KEY = "mg:apitoken-used:{}"
CACHE_SECONDS = 60


class MalformedToken(Unauthorized):
    """A token that fails its checksum: refused without any lookup, and not worth counting."""

    code = "invalid_token"
    message = "The API token is invalid."


@dataclass(frozen=True)
class ResolvedToken:
    id: int
    user_id: int
    scopes: frozenset[str]
    expires_at: datetime | None
    rate_limit: str | None = None


def _live_filter(now: datetime):
    return (
        ApiToken.revoked_at.is_(None),
        (ApiToken.expires_at.is_(None)) | (ApiToken.expires_at > now),
    )


def create_token(
    user: User,
    name: str,
    scopes: list[str],
    expires_in_days: int | None,
    client: Client,
    rate_limit: str | None = None,
) -> tuple[ApiToken, str]:
    """Mint a token; the clear text is returned here and never again.

    `expires_in_days=None` makes a token that never expires (the route defaults to 90).
    """
    now = utcnow()
    live = db.session.scalar(
        select(func.count()).where(ApiToken.user_id == user.id, *_live_filter(now))
    )
    if (live or 0) >= MAX_LIVE_TOKENS:
        raise Conflict(
            f"You already have {MAX_LIVE_TOKENS} live tokens; revoke one first.",
            code="token_limit_reached",
        )
    secret = generate_token()
    token = ApiToken(
        user_id=user.id,
        name=name,
        token_hash=hash_token(secret),
        prefix=secret[:7],
        last_four=secret[-4:],
        scopes=sorted(set(scopes)),
        rate_limit=rate_limit,
        expires_at=now + timedelta(days=expires_in_days) if expires_in_days else None,
    )
    db.session.add(token)
    db.session.flush()
    record_event("token_create", client, user_id=user.id, token_id=token.id, scopes=token.scopes)
    db.session.commit()
    return token, secret


def list_tokens(user: User) -> list[ApiToken]:
    query = select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id.desc())
    return list(db.session.scalars(query))


def _own_token(user: User, token_id: int) -> ApiToken:
    """One of the user's live tokens (a revoked one is only listed, for the record)."""
    token = db.session.get(ApiToken, token_id)
    if token is None or token.user_id != user.id or token.revoked_at is not None:
        raise NotFound("No such token.", code="token_not_found")
    return token


def rename_token(user: User, token_id: int, name: str, client: Client) -> ApiToken:
    token = _own_token(user, token_id)
    record_event(
        "token_rename", client, user_id=user.id, token_id=token.id, old=token.name, new=name
    )
    token.name = name
    db.session.commit()
    return token


def revoke_token(user: User, token_id: int, client: Client) -> None:
    """Revoke a token; it fails in every worker from the next call on."""
    token = _own_token(user, token_id)
    token.revoked_at = utcnow()
    record_event("token_revoke", client, user_id=user.id, token_id=token.id)
    db.session.commit()
    _forget(token.token_hash)


def revoke_user_tokens(user_id: int, reason: str, client: Client) -> int:
    """Revoke every live token of a user (account recovery); returns how many."""
    now = utcnow()
    tokens = list(
        db.session.scalars(select(ApiToken).where(ApiToken.user_id == user_id, *_live_filter(now)))
    )
    for token in tokens:
        token.revoked_at = now
    if tokens:
        record_event("token_revoke_all", client, user_id=user_id, reason=reason, count=len(tokens))
    db.session.flush()
    _forget(*(token.token_hash for token in tokens))
    return len(tokens)


def _forget(*token_hashes: str) -> None:
    cache = redis_client.client
    if cache is None or not token_hashes:
        return
    try:
        cache.delete(*(CACHE_KEY.format(token_hash) for token_hash in token_hashes))
    except redis.RedisError as error:
        redis_client.report_failure("api token cache", error)


def _cached(token_hash: str) -> ResolvedToken | None:
    cache = redis_client.client
    if cache is None:
        return None
    try:
        raw = cache.get(CACHE_KEY.format(token_hash))
    except redis.RedisError as error:
        redis_client.report_failure("api token cache", error)
        return None
    if raw is None:
        return None
    data = json.loads(raw)
    expires = data["expires_at"]
    return ResolvedToken(
        id=data["id"],
        user_id=data["user_id"],
        scopes=frozenset(data["scopes"]),
        expires_at=datetime.fromtimestamp(expires, UTC) if expires is not None else None,
        rate_limit=data.get("rate_limit"),
    )


def _remember(token_hash: str, token: ResolvedToken) -> None:
    cache = redis_client.client
    if cache is None:
        return
    data = {
        "id": token.id,
        "user_id": token.user_id,
        "scopes": sorted(token.scopes),
        "expires_at": token.expires_at.timestamp() if token.expires_at else None,
        "rate_limit": token.rate_limit,
    }
    try:
        cache.set(CACHE_KEY.format(token_hash), json.dumps(data), ex=CACHE_SECONDS)
    except redis.RedisError as error:
        redis_client.report_failure("api token cache", error)


def resolve_token(secret: str) -> ResolvedToken:
    """Find the live token behind `secret`; a malformed one is refused without any lookup."""
    if not has_valid_checksum(secret):
        raise MalformedToken()
    token_hash = hash_token(secret)
    resolved = _cached(token_hash)
    if resolved is None:
        row = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash))
        if row is None or row.revoked_at is not None:
            raise Unauthorized("The API token is invalid or revoked.", code="invalid_token")
        resolved = ResolvedToken(
            row.id, row.user_id, frozenset(row.scopes), row.expires_at, row.rate_limit
        )
        _remember(token_hash, resolved)
    if resolved.expires_at is not None and resolved.expires_at <= utcnow():
        raise Unauthorized("The API token has expired.", code="token_expired")
    return resolved


def touch_token(token_id: int) -> None:
    """Record use, at most once a minute per token (Redis decides across workers)."""
    now = utcnow()
    cache = redis_client.client
    first_this_minute: bool | None = None
    if cache is not None:
        try:
            first_this_minute = bool(cache.set(USED_KEY.format(token_id), "1", nx=True, ex=60))
        except redis.RedisError as error:
            redis_client.report_failure("api token last-used", error)
    # Without Redis, each process throttles on its own (kept on the app, not the module).
    written: dict[int, datetime] = current_app.extensions.setdefault("token_last_used", {})
    if first_this_minute is None:
        last = written.get(token_id)
        first_this_minute = last is None or now - last >= timedelta(minutes=1)
    if first_this_minute:
        written[token_id] = now
        token = db.session.get(ApiToken, token_id)
        if token is not None:
            token.last_used_at = now
            db.session.commit()

"""Minting, listing, renaming, revoking and looking up API tokens.

A lookup reads the token and its user once; each worker then keeps the result
(`api.tokens.cache`), and every revoke bumps the auth epoch so that no worker
acts on a cached token after it is revoked. `last_used_at` is moved forward by
the usage writer (`note_use`), off the request path.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select, update

from api.audit.service import Client, record_event
from api.auth.models import User
from api.db_types import utcnow
from api.edge.errors import Conflict, NotFound, Unauthorized
from api.extensions import db
from api.tokens.cache import CachedPrincipal, bump_auth_epoch
from api.tokens.format import generate_token, hash_token
from api.tokens.models import ApiToken

MAX_LIVE_TOKENS = 20


class MalformedToken(Unauthorized):
    """A token that fails its checksum: refused without any lookup, and not worth counting."""

    code = "invalid_token"
    message = "The API token is invalid."


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
    bump_auth_epoch()


def revoke_user_tokens(user_id: int, reason: str, client: Client) -> int:
    """Revoke every live token of a user (account recovery); returns how many.

    In the caller's transaction: bump the auth epoch after committing it.
    """
    now = utcnow()
    tokens = list(
        db.session.scalars(select(ApiToken).where(ApiToken.user_id == user_id, *_live_filter(now)))
    )
    for token in tokens:
        token.revoked_at = now
    if tokens:
        record_event("token_revoke_all", client, user_id=user_id, reason=reason, count=len(tokens))
    db.session.flush()
    return len(tokens)


def load_token(token_hash: str) -> CachedPrincipal:
    """Read the live token with this hash and its user from the database, or raise 401."""
    row = db.session.execute(
        select(ApiToken, User)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_hash == token_hash)
    ).first()
    if row is None or row.ApiToken.revoked_at is not None:
        raise Unauthorized("The API token is invalid or revoked.", code="invalid_token")
    token, user = row.ApiToken, row.User
    return CachedPrincipal(
        token_id=token.id,
        user_id=user.id,
        scopes=frozenset(token.scopes),
        expires_at=token.expires_at,
        token_rate_limit=token.rate_limit,
        email=user.email,
        role=user.role,
        user_rate_limit=user.rate_limit,
        active=user.is_active,
    )


def note_use(rows: list[tuple[int, datetime]]) -> None:
    """Move `last_used_at` forward for (token id, used at) pairs, in the caller's transaction.

    The usage writer calls this for each batch, so recording use costs no
    statement on the request path.
    """
    latest: dict[int, datetime] = {}
    for token_id, used_at in rows:
        latest[token_id] = max(used_at, latest.get(token_id, used_at))
    for token_id, used_at in latest.items():
        db.session.execute(
            update(ApiToken)
            .where(
                ApiToken.id == token_id,
                (ApiToken.last_used_at.is_(None)) | (ApiToken.last_used_at < used_at),
            )
            .values(last_used_at=used_at)
            .execution_options(synchronize_session=False)
        )

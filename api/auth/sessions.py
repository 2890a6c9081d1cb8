"""Login sessions: short access JWTs, rotating refresh JWTs, and their revocation.

A session row is one login and one family of refresh tokens; only the newest
refresh token (`refresh_jti`) is valid. Presenting an older one means it was
stolen or replayed, so the whole family is revoked. Revocation is written to the
database (the truth) and cached in Redis (a fast "no" for every worker); when
Redis is down the database alone answers.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import redis
from flask import Response, current_app, g
from flask_jwt_extended import JWTManager, create_access_token, create_refresh_token
from sqlalchemy import select, update

from api.audit.service import Client, record_event
from api.auth.models import AuthSession, User
from api.db_types import utcnow
from api.edge.errors import Unauthorized, error_response
from api.extensions import db, redis_client

REVOKED_KEY = "mg:session:revoked:{}"


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str
    expires_in: int


def _issue(user: User, session: AuthSession, jti: str) -> Tokens:
    claims = {"sid": session.id}
    access = create_access_token(identity=str(user.id), additional_claims=claims)
    refresh = create_refresh_token(identity=str(user.id), additional_claims={**claims, "jti": jti})
    expires = current_app.config["JWT_ACCESS_TOKEN_EXPIRES"]
    return Tokens(access, refresh, int(expires.total_seconds()))


def start_session(user: User, client: Client) -> Tokens:
    """Open a session for a user who has just proved who they are."""
    session = AuthSession(
        id=uuid.uuid4().hex,
        user_id=user.id,
        refresh_jti="",
        expires_at=utcnow() + current_app.config["JWT_REFRESH_TOKEN_EXPIRES"],
        ip=client.ip,
        user_agent=(client.user_agent or "")[:256] or None,
    )
    session.refresh_jti = uuid.uuid4().hex
    db.session.add(session)
    tokens = _issue(user, session, session.refresh_jti)
    user.last_login_at = utcnow()
    record_event("login", client, user_id=user.id, session_id=session.id)
    db.session.commit()
    return tokens


def rotate_session(claims: dict, client: Client) -> tuple[User, Tokens]:
    """Swap a current refresh token for new tokens; an old one revokes the family."""
    session = db.session.get(AuthSession, claims.get("sid", ""))
    user = db.session.get(User, session.user_id) if session else None
    if user is not None and not user.is_active:
        raise Unauthorized("This account is disabled.", code="account_unavailable")
    if session is None or user is None or session.revoked_at:
        raise Unauthorized("This session has ended; sign in again.", code="session_revoked")
    # The conditional UPDATE is the rotation: of two concurrent refreshes with one token,
    # exactly one swaps the jti; the other finds it gone and is treated as a replay.
    jti = uuid.uuid4().hex
    swapped = db.session.execute(
        update(AuthSession)
        .where(
            AuthSession.id == session.id,
            AuthSession.refresh_jti == claims["jti"],
            AuthSession.revoked_at.is_(None),
        )
        .values(refresh_jti=jti, refreshed_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if swapped.rowcount != 1:  # type: ignore[attr-defined]
        db.session.rollback()
        session = db.session.get(AuthSession, session.id)
        assert session is not None
        _revoke(session, "refresh_reuse")
        record_event("refresh_reuse", client, user_id=user.id, session_id=session.id)
        db.session.commit()
        raise Unauthorized(
            "This refresh token was already used; every session of this login has ended.",
            code="refresh_token_reused",
        )
    tokens = _issue(user, session, jti)
    db.session.commit()
    return user, tokens


def _cache_revocation(session_id: str, expires_at: datetime) -> None:
    client = redis_client.client
    if client is None:
        return
    ttl = max(1, int((expires_at - utcnow()).total_seconds()))
    try:
        client.set(REVOKED_KEY.format(session_id), "1", ex=ttl)
    except redis.RedisError as error:
        redis_client.report_failure("session revocation cache", error)


def _revoke(session: AuthSession, reason: str) -> None:
    if session.revoked_at is None:
        session.revoked_at = utcnow()
        session.revoked_reason = reason
    _cache_revocation(session.id, session.expires_at)


def revoke_session(session_id: str, reason: str) -> None:
    session = db.session.get(AuthSession, session_id)
    if session is not None:
        _revoke(session, reason)


def revoke_user_sessions(user_id: int, reason: str, keep: str | None = None) -> int:
    """End every open session of a user (but `keep`); returns how many ended."""
    query = select(AuthSession).where(
        AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None)
    )
    sessions = [s for s in db.session.scalars(query) if s.id != keep]
    for session in sessions:
        _revoke(session, reason)
    return len(sessions)


def session_is_revoked(session_id: str | None) -> bool:
    """Ask Redis first (a cached revocation), then the database, which is authoritative."""
    if not session_id:
        return True
    client = redis_client.client
    if client is not None:
        try:
            if client.exists(REVOKED_KEY.format(session_id)):
                return True
        except redis.RedisError as error:
            redis_client.report_failure("session revocation cache", error)
    row = db.session.execute(
        select(AuthSession.revoked_at, AuthSession.expires_at).where(AuthSession.id == session_id)
    ).first()
    return row is None or row.revoked_at is not None or row.expires_at <= utcnow()


def end_session_for_logout(session_id: str, user_id: int, client: Client) -> None:
    revoke_session(session_id, "logout")
    record_event("logout", client, user_id=user_id, session_id=session_id)
    db.session.commit()


def end_all_sessions(user_id: int, client: Client) -> int:
    """Sign out everywhere: every open session of the user ends; returns how many."""
    count = revoke_user_sessions(user_id, "logout_all")
    record_event("logout_all", client, user_id=user_id, count=count)
    db.session.commit()
    return count


def _load_user(_header: dict, payload: dict) -> User | None:
    try:
        user = db.session.get(User, int(payload["sub"]))
    except (KeyError, TypeError, ValueError):
        return None
    if user is None or not user.is_active:
        return None
    g.user_id = user.id
    return user


def _unauthorized(code: str, message: str):
    def callback(*_args: object) -> Response:
        return error_response(401, code, message)

    return callback


def _revoked(_header: dict, payload: dict) -> Response:
    """A revoked session's 401 says when the reason is a disabled account (the web app shows it)."""
    try:
        user = db.session.get(User, int(payload["sub"]))
    except (KeyError, TypeError, ValueError):
        user = None
    if user is not None and not user.is_active:
        return error_response(401, "account_unavailable", "This account is disabled.")
    return error_response(401, "session_revoked", "This session has ended; sign in again.")


def init_jwt(manager: JWTManager) -> None:
    """Wire flask-jwt-extended to our users, our revocation check and our error shape."""
    manager.user_lookup_loader(_load_user)
    manager.token_in_blocklist_loader(lambda _h, payload: session_is_revoked(payload.get("sid")))
    manager.user_lookup_error_loader(
        _unauthorized("account_unavailable", "This account is disabled or no longer exists.")
    )
    manager.unauthorized_loader(_unauthorized("unauthorized", "Missing or invalid credentials."))
    manager.invalid_token_loader(_unauthorized("invalid_token", "The token is invalid."))
    manager.expired_token_loader(_unauthorized("token_expired", "The token has expired."))
    manager.revoked_token_loader(_revoked)
    manager.token_verification_failed_loader(
        _unauthorized("invalid_token", "The token is invalid.")
    )
    manager.needs_fresh_token_loader(_unauthorized("invalid_token", "A fresh login is needed."))

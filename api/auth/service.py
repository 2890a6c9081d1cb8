"""Account logic: registration, verification, login, password reset and change.

No function here touches the request; routes pass the caller's `Client`. Every
answer about an email address is the same whether or not an account exists, and
costs the same: a password is always hashed or verified, and resend and
forgot-password run off the request path (`api.process.background`) for every address.
Mail to one address stops past `EMAIL_ACTION_LIMIT`; the answer does not change.
Each email token is spent with one conditional UPDATE, so it works once even
under concurrent use.
"""

from __future__ import annotations

import hashlib
import secrets
import unicodedata
from datetime import timedelta

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from api.access.ratelimits import allow
from api.audit.service import Client, record_event
from api.auth import emails
from api.auth.mailer import send_email
from api.auth.models import EmailToken, User
from api.auth.passwords import (
    dummy_hash,
    hash_password,
    needs_rehash,
    password_problem,
    verify_password,
)
from api.auth.sessions import Tokens, revoke_user_sessions, start_session
from api.db_types import utcnow
from api.edge.errors import Forbidden, Unauthorized, Unprocessable
from api.extensions import db
from api.tokens.cache import bump_auth_epoch
from api.tokens.service import revoke_user_tokens

VERIFY, RESET = "verify_email", "reset_password"
LIFETIMES = {VERIFY: timedelta(hours=24), RESET: timedelta(hours=1)}


def normalise_email(email: str) -> str:
    return unicodedata.normalize("NFKC", email).strip().lower()


def find_user_by_email(email: str) -> User | None:
    return db.session.scalar(select(User).where(User.email == normalise_email(email)))


class WrongPassword(Unprocessable):
    """The current password given to change-password is wrong (counted like a failed login)."""

    code = "wrong_password"

    def __init__(self) -> None:
        super().__init__(details={"current_password": ["Wrong password."]})


def email_digest(email: str) -> str:
    """A stable key for an address that does not reveal it (rate-limit keys, Redis)."""
    normalised = normalise_email(email).encode("utf-8", "surrogatepass")
    return hashlib.sha256(normalised).hexdigest()[:32]


def may_mail(email: str, client: Client) -> bool:
    """Count one mail to `email` asked from `client`; False once a limit is spent (send none).

    Counted per address and asker (`EMAIL_ACTION_LIMIT`), so one asker flooding an
    inbox does not stop the owner's own request, and per address from anywhere
    (`EMAIL_ACCOUNT_LIMIT`), a ceiling for askers spread over many addresses.
    """
    config, digest = current_app.config, email_digest(email)
    return allow(config["EMAIL_ACTION_LIMIT"], "mail", f"{digest}:{client.ip}") and allow(
        config["EMAIL_ACCOUNT_LIMIT"], "mail-account", digest
    )


def _check_password_policy(password: str, field: str = "password") -> None:
    problem = password_problem(password)
    if problem:
        raise Unprocessable(
            "Choose another password.", code="weak_password", details={field: [problem]}
        )


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _issue_email_token(user: User, purpose: str) -> str:
    token = secrets.token_urlsafe(32)  # 256 bits
    db.session.add(
        EmailToken(
            user_id=user.id,
            purpose=purpose,
            token_hash=_hash_token(token),
            expires_at=utcnow() + LIFETIMES[purpose],
        )
    )
    return token


def _use_email_token(token: str, purpose: str) -> User:
    """Consume a single-use token; a wrong, used or expired one is a 400 naming `token`."""
    now = utcnow()
    token_hash = _hash_token(token)
    row = db.session.scalar(
        select(EmailToken).where(EmailToken.token_hash == token_hash, EmailToken.purpose == purpose)
    )
    # The conditional UPDATE is the use: of concurrent requests with one token, one wins.
    spent = db.session.execute(
        update(EmailToken)
        .where(
            EmailToken.token_hash == token_hash,
            EmailToken.purpose == purpose,
            EmailToken.used_at.is_(None),
            EmailToken.expires_at > now,
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if row is None or spent.rowcount != 1:  # type: ignore[attr-defined]
        db.session.rollback()
        raise Unprocessable(
            "This link is invalid, used or expired.",
            code="invalid_token",
            details={"token": ["Invalid, used or expired."]},
        )
    # Spend every other outstanding token of this purpose: one link works, once.
    db.session.execute(
        update(EmailToken)
        .where(
            EmailToken.user_id == row.user_id,
            EmailToken.purpose == purpose,
            EmailToken.used_at.is_(None),
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    user = db.session.get(User, row.user_id)
    assert user is not None
    return user


def register_user(email: str, password: str, name: str | None, client: Client) -> None:
    """Create an unverified account and mail its link, or tell the owner they have one."""
    _check_password_policy(password)
    password_hash = hash_password(password)  # hashed either way: equal timing
    email = normalise_email(email)
    existing = find_user_by_email(email)
    if existing is not None:
        record_event("register_existing", client, user_id=existing.id)
        db.session.commit()
        if may_mail(email, client):
            send_email(emails.already_registered_email(existing.email))
        return
    user = User(email=email, name=name, password_hash=password_hash, role="user")
    db.session.add(user)
    try:
        db.session.flush()
    except IntegrityError:  # a concurrent registration won the race
        db.session.rollback()
        return
    token = _issue_email_token(user, VERIFY)
    record_event("register", client, user_id=user.id)
    db.session.commit()
    if may_mail(email, client):
        send_email(emails.verification_email(user.email, token))


def verify_email(token: str, client: Client) -> User:
    user = _use_email_token(token, VERIFY)
    if user.email_verified_at is None:
        user.email_verified_at = utcnow()
    record_event("verify_email", client, user_id=user.id)
    db.session.commit()
    return user


def resend_verification(email: str, client: Client) -> None:
    """Mail a new verification link to an unverified account (a background job)."""
    if not may_mail(email, client):
        return
    user = find_user_by_email(email)
    if user is None or user.email_verified_at is not None or not user.is_active:
        return
    token = _issue_email_token(user, VERIFY)
    record_event("resend_verification", client, user_id=user.id)
    db.session.commit()
    send_email(emails.verification_email(user.email, token))


def log_in(email: str, password: str, client: Client) -> tuple[User, Tokens]:
    """Check the credentials and open a session; the same 401 for a wrong email or password."""
    user = find_user_by_email(email)
    if user is None:
        verify_password(dummy_hash(), password)
        raise Unauthorized("Wrong email or password.", code="invalid_credentials")
    if not verify_password(user.password_hash, password):
        record_event("login_failed", client, user_id=user.id)
        db.session.commit()
        raise Unauthorized("Wrong email or password.", code="invalid_credentials")
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    if not user.is_active:
        raise Forbidden("This account is disabled.", code="account_disabled")
    if user.email_verified_at is None:
        raise Forbidden(
            "Confirm your email address first; we can send the link again.",
            code="email_not_verified",
        )
    return user, start_session(user, client)


def request_password_reset(email: str, client: Client) -> None:
    """Mail a reset link to an active account (a background job)."""
    if not may_mail(email, client):
        return
    user = find_user_by_email(email)
    if user is None or not user.is_active:
        return
    token = _issue_email_token(user, RESET)
    record_event("password_reset_requested", client, user_id=user.id)
    db.session.commit()
    send_email(emails.reset_email(user.email, token))


def reset_password(token: str, password: str, client: Client) -> None:
    """Set a new password from an emailed link; end every session and revoke every API token.

    A reset is account recovery: whoever held the account may also hold its tokens.
    """
    _check_password_policy(password)
    password_hash = hash_password(password)
    user = _use_email_token(token, RESET)
    user.password_hash = password_hash
    if user.email_verified_at is None:  # the link proved the address
        user.email_verified_at = utcnow()
    revoke_user_sessions(user.id, "password_reset")
    revoked = revoke_user_tokens(user.id, "password_reset", client)
    record_event("password_reset", client, user_id=user.id)
    db.session.commit()
    bump_auth_epoch()
    send_email(emails.password_reset_done_email(user.email, revoked))


def change_password(
    user: User, current: str, new: str, session_id: str | None, client: Client
) -> None:
    """Change a password; every other session of the user ends."""
    if not verify_password(user.password_hash, current):
        record_event("password_change_failed", client, user_id=user.id)
        db.session.commit()
        raise WrongPassword()
    _check_password_policy(new, field="new_password")
    user.password_hash = hash_password(new)
    revoke_user_sessions(user.id, "password_change", keep=session_id)
    record_event("password_change", client, user_id=user.id)
    db.session.commit()


def update_profile(user: User, name: str | None) -> User:
    user.name = name
    db.session.commit()
    return user

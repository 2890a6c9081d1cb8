"""Admin logic: find users, change roles, disable and enable accounts, service accounts."""

from __future__ import annotations

from sqlalchemy import func, or_, select

from api.audit.service import Client, record_event
from api.auth.models import User
from api.auth.passwords import hash_password, password_problem
from api.auth.service import find_user_by_email, normalise_email
from api.auth.sessions import revoke_user_sessions
from api.db_types import utcnow
from api.edge.errors import Conflict, NotFound, ValidationFailed
from api.extensions import db
from api.tokens.cache import bump_auth_epoch
from api.tokens.models import ApiToken
from api.tokens.service import create_token

ENABLED_ADMINS = select(User.id).where(User.role == "admin", User.disabled_at.is_(None))


def list_users(q: str | None, page: int, per_page: int) -> dict:
    """A page of users, newest first, filtered by a substring of email or name."""
    query = select(User)
    if q:
        pattern = f"%{q.strip().lower()}%"
        query = query.where(
            or_(func.lower(User.email).like(pattern), func.lower(User.name).like(pattern))
        )
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    items = db.session.scalars(
        query.order_by(User.id.desc()).offset((page - 1) * per_page).limit(per_page)
    ).all()
    return {"items": items, "page": page, "per_page": per_page, "total": total}


def get_user(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound("No such user.", code="user_not_found")
    return user


def update_user(admin: User, user_id: int, changes: dict, client: Client) -> User:
    """Change a user's role, rate limit or access; each applies from the user's next request.

    A change of role or access that would leave no enabled administrator is a 409.
    """
    access = "role" in changes or "disabled" in changes
    if access:
        _lock_admins()
    user = get_user(user_id)
    if user.id == admin.id and (
        changes.get("role", user.role) != user.role or changes.get("disabled")
    ):
        raise Conflict("Administrators cannot demote or disable themselves.", code="self_change")
    events: list[tuple[str, dict]] = []
    for field, action in (("role", "role_change"), ("rate_limit", "rate_limit_change")):
        old = getattr(user, field)
        if field in changes and changes[field] != old:
            events.append((action, {"old": old, "new": changes[field]}))
            setattr(user, field, changes[field])
    disabling = False
    if "disabled" in changes and changes["disabled"] != (user.disabled_at is not None):
        disabling = changes["disabled"]
        user.disabled_at = utcnow() if disabling else None
        events.append(("disable" if disabling else "enable", {}))
    if access:
        _keep_an_admin()
    if disabling:
        revoke_user_sessions(user.id, "disabled")
    for action, details in events:
        record_event(action, client, user_id=user.id, actor_id=admin.id, **details)
    db.session.commit()
    bump_auth_epoch()  # every worker re-reads this user's role, limit and access
    return user


def _lock_admins() -> None:
    """Hold the enabled admins' rows until commit, so changes to admins take turns.

    On PostgreSQL a second change waits here, then reads what the first committed
    (two admins removing each other at once would otherwise both pass the check).
    SQLite has no row locks; its writers take turns at the flush in `_keep_an_admin`.
    """
    db.session.execute(ENABLED_ADMINS.order_by(User.id).with_for_update())
    db.session.expire_all()  # read every user again, after the wait


def _keep_an_admin() -> None:
    """Refuse (409) a change that would leave no enabled administrator."""
    db.session.flush()  # counted with this change, after every change committed before it
    if db.session.scalar(ENABLED_ADMINS.limit(1)) is None:
        db.session.rollback()
        raise Conflict(
            "This would remove the last enabled administrator; promote another user first.",
            code="last_admin",
        )


def create_admin(email: str, password: str | None = None) -> User:
    """Make `email` an administrator, for the CLI; an existing account keeps its password.

    A new account is created verified with `password`, which must then be given and
    meet the password policy.
    """
    user = find_user_by_email(email)
    if user is None:
        problem = password_problem(password or "")
        if problem:
            raise ValidationFailed(problem, details={"password": [problem]})
        user = User(email=normalise_email(email), password_hash=hash_password(password or ""))
        db.session.add(user)
    user.role = "admin"
    user.email_verified_at = user.email_verified_at or utcnow()
    user.disabled_at = None
    db.session.flush()
    record_event(
        "role_change",
        Client(ip=None, user_agent="flask users create-admin"),
        user_id=user.id,
        new="admin",
    )
    db.session.commit()
    bump_auth_epoch()  # a running server sees the new role at once
    return user


SERVICE_DOMAIN = "service.invalid"  # RFC 2606: no mail is ever delivered there
LOCKED_HASH = "!"  # not an argon2 hash: no password verifies against it, so no login


def create_service_token(
    name: str, scopes: list[str], rate_limit: str
) -> tuple[User, ApiToken, str]:
    """A new API token for the service account `name`, created (or reused) for the CLI.

    A service account is another modelgate that calls this one (an API host calling a
    model host): it cannot log in (no password verifies, and no reset mail reaches its
    `.invalid` address), and its calls are held to `rate_limit`, not RATE_LIMIT_DEFAULT,
    since they are many users' calls. The token never expires; revoke it with the account.
    """
    email = f"{name}@{SERVICE_DOMAIN}"
    user = find_user_by_email(email)
    if user is None:
        user = User(email=email, name=f"service: {name}", password_hash=LOCKED_HASH)
        db.session.add(user)
    user.password_hash = LOCKED_HASH  # an account of that address made another way: locked too
    user.rate_limit = rate_limit
    user.disabled_at = None
    db.session.flush()
    client = Client(ip=None, user_agent="flask users create-service")
    token, secret = create_token(user, f"service {name}", scopes, None, client)
    bump_auth_epoch()  # a running server holds the account to its new limit at once
    return user, token, secret

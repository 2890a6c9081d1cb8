"""The one way a request proves who it is, and which credential each route takes.

`authenticate()` guards a view. `Authorization: Bearer <token>` carries either an
API token (`mg_...`, see api/tokens) or a session access token (a JWT from
login). Either resolves to a `Principal`: the user, the token or session, and
the scopes. The user row is read on every request, so a disabled account or a
role change takes effect at once in every worker.

Least privilege: a route names the credential it takes. Account, token and admin
routes take a login session only (`session_only`, implied by `admin`); API tokens
reach only the routes whose scope they carry. A session carries every scope.
Invalid credentials are counted per client address; past `AUTH_FAILURE_LIMIT` that
address gets 429 before any lookup (see `api.access.ratelimits`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flask import g, request
from flask_jwt_extended import current_user, get_jwt, verify_jwt_in_request
from flask_jwt_extended.exceptions import JWTDecodeError
from jwt import ExpiredSignatureError, InvalidTokenError

from api.access.budget import LIMITED, Budget, EpochChanged, check_budget, limits_for
from api.access.ratelimits import check_auth_failures, record_auth_failure
from api.auth.models import User
from api.db_types import utcnow
from api.edge.contract import declare
from api.edge.errors import Forbidden, Unauthorized
from api.extensions import db
from api.tokens.cache import CachedPrincipal, principal_cache, read_epoch
from api.tokens.format import has_valid_checksum, hash_token, looks_like_api_token
from api.tokens.service import MalformedToken, load_token

F = TypeVar("F", bound=Callable[..., Any])
# What an API token may do with each scope (docs/security.md has the whole table).
SCOPES = {
    "embed": "create embeddings",
    "generate": "create completions; read and delete the history this token made",
    "usage": "read the account's usage figures",
    "batch": "upload, read and delete files; create, read and cancel batches (creating one "
    "also takes the scope of its endpoint)",
    "predict": "call handler models (POST /v1/models/{id}/predict)",
}
ALL_SCOPES = frozenset(SCOPES)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the user, and either their login session or their API token."""

    user_id: int
    email: str
    role: str
    rate_limit: str | None
    session_id: str | None = None
    token_id: int | None = None
    scopes: frozenset[str] = field(default=ALL_SCOPES)
    token_rate_limit: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def user(self) -> User:
        """The account row, for routes that change it (read once per request, if at all)."""
        user = db.session.get(User, self.user_id)
        if user is None:
            raise Unauthorized("This account no longer exists.", code="account_unavailable")
        return user


def current_principal() -> Principal:
    return g.principal


def _bearer() -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


def _windows(p: CachedPrincipal):  # type: ignore[no-untyped-def]
    return limits_for(p.user_id, p.user_rate_limit, p.token_id, p.token_rate_limit)


def _usable(found: CachedPrincipal) -> CachedPrincipal:
    if not found.active:
        raise Unauthorized("This account is disabled.", code="account_unavailable")
    if found.expires_at is not None and found.expires_at <= utcnow():
        raise Unauthorized("The API token has expired.", code="token_expired")
    return found


def _from_api_token(secret: str, limited: bool) -> tuple[Principal, Budget | None]:
    """Resolve an API token from the worker's cache (else the database), and count the call.

    The auth epoch comes back with the budget in one Redis round trip; if it moved,
    the cache is dropped and the token read again, so a revoke bites at once.
    """
    if not has_valid_checksum(secret):
        raise MalformedToken()
    token_hash = hash_token(secret)
    cache = principal_cache()
    cached = cache.get(token_hash)
    # The epoch the data was read under: the cache's, or (a miss) read before the database.
    epoch = cache.epoch if cached is not None else read_epoch()
    found = _usable(cached or load_token(token_hash))
    budget = None
    if limited:
        try:
            budget, seen = check_budget(_windows(found), epoch)
        except EpochChanged as changed:
            cache.observe(changed.epoch)
            epoch = changed.epoch
            found = _usable(load_token(token_hash))
            budget, seen = check_budget(_windows(found), None)
        if seen is None and found is cached:  # Redis did not answer: re-read, do not trust
            found = _usable(load_token(token_hash))
        epoch = epoch if seen is not None else None
    elif cached is not None:
        seen = read_epoch()
        if seen != epoch:
            cache.observe(seen)
            epoch = seen
            found = _usable(load_token(token_hash))
    if epoch is None:  # Redis did not answer: trust nothing cached
        cache.observe(None)
    cache.put(token_hash, found, epoch)
    principal = Principal(
        user_id=found.user_id,
        email=found.email,
        role=found.role,
        rate_limit=found.user_rate_limit,
        token_id=found.token_id,
        scopes=found.scopes,
        token_rate_limit=found.token_rate_limit,
    )
    return principal, budget


def _from_session(limited: bool) -> tuple[Principal, Budget | None]:
    verify_jwt_in_request(locations=["headers"])
    user: User = current_user
    principal = Principal(
        user_id=user.id,
        email=user.email,
        role=user.role,
        rate_limit=user.rate_limit,
        session_id=get_jwt().get("sid"),
    )
    if not limited:
        return principal, None
    budget, _ = check_budget(limits_for(user.id, user.rate_limit, None, None), None)
    return principal, budget


def _is_invalid_credential(error: Exception) -> bool:
    """A presented credential that is wrong (not missing, expired, or malformed: free to refuse)."""
    if isinstance(error, MalformedToken):
        return False
    if isinstance(error, Unauthorized):
        return error.code == "invalid_token"
    return isinstance(error, InvalidTokenError | JWTDecodeError) and not isinstance(
        error, ExpiredSignatureError
    )


def identify(limited: bool = False) -> tuple[Principal, Budget | None]:
    """Resolve the caller from the Authorization header, or raise 401 (429 after many fails).

    With `limited`, the call is also counted against the caller's budget.
    """
    check_auth_failures()
    secret = _bearer()
    try:
        if secret is not None and looks_like_api_token(secret):
            return _from_api_token(secret, limited)
        return _from_session(limited)
    except Exception as error:
        if _is_invalid_credential(error):
            record_auth_failure()
        raise


def authenticate(
    *, scope: str | None = None, admin: bool = False, session_only: bool = False
) -> Callable[[F], F]:
    """Require a caller; optionally an API scope, the admin role, or a login session.

    `admin` implies `session_only`: no API token carries admin powers.
    """
    session_only = session_only or admin

    def decorator(view: F) -> F:
        limited = getattr(view, LIMITED, False)  # counted here: one round trip with the epoch

        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            principal, budget = identify(limited)
            g.principal, g.budget = principal, budget
            g.user_id = principal.user_id
            if session_only and principal.session_id is None:
                raise Forbidden(
                    "Sign in to manage this; API tokens cannot.", code="session_required"
                )
            if scope is not None and scope not in principal.scopes:
                raise Forbidden(
                    f"This token lacks the '{scope}' scope.",
                    code="insufficient_scope",
                    details={"required_scope": scope},
                )
            if admin and not principal.is_admin:
                raise Forbidden("Only administrators may do this.", code="admin_required")
            return view(*args, **kwargs)

        auth = {"session_only": session_only, "scope": scope, "admin": admin}
        return declare(wrapper, auth=auth)  # type: ignore[return-value]

    return decorator

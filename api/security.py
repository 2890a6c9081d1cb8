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
address gets 429 before any lookup (see `api.ratelimits`).
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

from api.auth.models import User
from api.contract import declare
from api.errors import Forbidden, Unauthorized
from api.extensions import db
from api.ratelimits import check_auth_failures, record_auth_failure
from api.tokens.format import looks_like_api_token
from api.tokens.service import MalformedToken, resolve_token, touch_token

F = TypeVar("F", bound=Callable[..., Any])
ALL_SCOPES = frozenset({"embed", "generate", "usage"})
# What an API token may do with each scope (docs/security.md has the whole table).
SCOPES = {
    "embed": "create embeddings",
    "generate": "create completions; read and delete the history this token made",
    "usage": "read the account's usage figures",
}


@dataclass(frozen=True)
class Principal:
    """Who is calling: the user, and either their login session or their API token."""

    user: User
    session_id: str | None = None
    token_id: int | None = None
    scopes: frozenset[str] = field(default=ALL_SCOPES)
    token_rate_limit: str | None = None


def current_principal() -> Principal:
    return g.principal


def _bearer() -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


def _from_api_token(secret: str) -> Principal:
    token = resolve_token(secret)
    user = db.session.get(User, token.user_id)
    if user is None or not user.is_active:
        raise Unauthorized("This account is disabled.", code="account_unavailable")
    touch_token(token.id)
    return Principal(
        user=user, token_id=token.id, scopes=token.scopes, token_rate_limit=token.rate_limit
    )


def _from_session() -> Principal:
    verify_jwt_in_request(locations=["headers"])
    return Principal(user=current_user, session_id=get_jwt().get("sid"))


def _is_invalid_credential(error: Exception) -> bool:
    """A presented credential that is wrong (not missing, expired, or malformed: free to refuse)."""
    if isinstance(error, MalformedToken):
        return False
    if isinstance(error, Unauthorized):
        return error.code == "invalid_token"
    return isinstance(error, InvalidTokenError | JWTDecodeError) and not isinstance(
        error, ExpiredSignatureError
    )


def identify() -> Principal:
    """Resolve the caller from the Authorization header, or raise 401 (429 after many fails)."""
    check_auth_failures()
    secret = _bearer()
    try:
        if secret is not None and looks_like_api_token(secret):
            return _from_api_token(secret)
        return _from_session()
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
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            principal = identify()
            g.principal = principal
            g.user_id = principal.user.id
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
            if admin and not principal.user.is_admin:
                raise Forbidden("Only administrators may do this.", code="admin_required")
            return view(*args, **kwargs)

        auth = {"session_only": session_only, "scope": scope, "admin": admin}
        return declare(wrapper, auth=auth)  # type: ignore[return-value]

    return decorator

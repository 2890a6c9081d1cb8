"""The one way a request proves who it is.

`authenticate()` guards a view: it accepts `Authorization: Bearer <session access
token>` and sets `g.principal`. Roles are read from the database on every
request, so a role change, a disabled account or an ended session takes effect at
once in every worker.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flask import g
from flask_jwt_extended import current_user, get_jwt, verify_jwt_in_request

from api.auth.models import User
from api.errors import Forbidden

F = TypeVar("F", bound=Callable[..., Any])
ALL_SCOPES = frozenset({"embed", "generate"})


@dataclass(frozen=True)
class Principal:
    """Who is calling: the user, and either their login session or their API token."""

    user: User
    session_id: str | None = None
    token_id: int | None = None
    scopes: frozenset[str] = field(default=ALL_SCOPES)


def current_principal() -> Principal:
    return g.principal


def _from_session() -> Principal:
    verify_jwt_in_request(locations=["headers"])
    return Principal(user=current_user, session_id=get_jwt().get("sid"))


def authenticate(*, admin: bool = False) -> Callable[[F], F]:
    """Require a signed-in session (and the admin role when `admin`)."""

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            principal = _from_session()
            g.principal = principal
            g.user_id = principal.user.id
            if admin and not principal.user.is_admin:
                raise Forbidden("Only administrators may do this.", code="admin_required")
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorator

"""The OpenAPI document is the API: the error component, security schemes and the rules that
give every operation each status it can really return.

Routes declare what is theirs (schemas, `alt_response`s for their own errors);
the decorators that cause a status declare it too (`declare`): `authenticate`
adds its security scheme, 401, 403 and 429; `api_rate_limit` adds 429 and the
`X-RateLimit-*` headers. `ContractPlugin` then applies the rules that hold for
every operation under `/v1` (400 for bad input, 413/415 for bodies, 503 when the
database is down, `X-Trace-Id` on every answer) and writes the traits into the
document. Nothing here is written by hand per operation.
"""

from __future__ import annotations

import copy
import http
from collections.abc import Callable
from typing import Any, TypeVar

from apispec import BasePlugin
from flask_smorest import Api
from flask_smorest.utils import prepare_response
from marshmallow import Schema, fields, validate

F = TypeVar("F", bound=Callable[..., Any])

TRAITS = "x-modelgate-traits"
BODY_METHODS = {"post", "put", "patch"}
# OpenAI's error `type` for each status, so its clients show the right kind of error.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "service_unavailable_error",
    504: "timeout_error",
}
# What `security` lists for each kind of credential an operation takes.
SECURITY_SCHEMES = {
    "apiToken": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "mg_ + 46 base62 characters",
        "description": "An API token from POST /v1/tokens, limited to its scopes "
        "(embed, generate, usage, batch).",
    },
    "sessionToken": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "A session access token from POST /v1/auth/login (15 minutes); "
        "it carries every scope.",
    },
    "refreshCookie": {
        "type": "apiKey",
        "in": "cookie",
        "name": "mg_refresh",
        "description": "The httpOnly refresh cookie set by login and refresh.",
    },
    "csrfHeader": {
        "type": "apiKey",
        "in": "header",
        "name": "X-CSRF-TOKEN",
        "description": "The value of the mg_csrf cookie, echoed (double-submit CSRF).",
    },
}
TRACE_HEADER = {
    "description": "The request's trace id: the client's X-Trace-Id, else from traceparent, "
    "else generated. Quote it when reporting a problem.",
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"},
    "required": True,
}
RETRY_AFTER = {
    "description": "Seconds to wait before retrying.",
    "schema": {"type": "integer", "minimum": 0},
    "required": True,
}
RATE_LIMIT_HEADERS = {
    name: {"description": description, "schema": {"type": "integer"}}
    for name, description in (
        ("X-RateLimit-Limit", "Calls allowed in the window."),
        ("X-RateLimit-Remaining", "Calls left in the window."),
        ("X-RateLimit-Reset", "When the window resets (Unix time)."),
        ("x-ratelimit-limit-requests", "OpenAI's name for X-RateLimit-Limit."),
        ("x-ratelimit-remaining-requests", "OpenAI's name for X-RateLimit-Remaining."),
    )
}
RATE_LIMIT_HEADERS["x-ratelimit-reset-requests"] = {
    "description": "Time until the window resets, as OpenAI writes it (1s, 6m0s, 1h2m3s).",
    "schema": {"type": "string", "pattern": "^([0-9]+h)?([0-9]+m)?[0-9]+s$"},
}


class ErrorBody(Schema):
    code = fields.String(
        required=True, metadata={"description": "What went wrong, in snake_case; stable."}
    )
    message = fields.String(required=True, metadata={"description": "For people."})
    type = fields.String(
        required=True,
        metadata={"description": "OpenAI's error type.", "enum": sorted(set(ERROR_TYPES.values()))},
    )
    param = fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "The first field at fault, or null (OpenAI's `param`)."},
    )
    trace_id = fields.String(
        required=True, allow_none=True, metadata={"description": "Quote it in a report."}
    )
    details = fields.Dict(
        required=True,
        metadata={"description": "Per field, its messages; or facts about the error."},
    )


class ErrorOut(Schema):
    """The one error shape of every 4xx and 5xx."""

    error = fields.Nested(ErrorBody, required=True)


def declare(view: F, **traits: Any) -> F:
    """Record what a decorator adds to `view`'s contract (auth, rate limit) for the document."""
    apidoc = copy.deepcopy(getattr(view, "_apidoc", {}))
    manual = apidoc.setdefault("manual_doc", {})
    manual[TRAITS] = {**manual.get(TRAITS, {}), **traits}
    view._apidoc = apidoc  # type: ignore[attr-defined]
    return view


class ContractApi(Api):
    """flask-smorest's Api with our error component and no catch-all `default` response."""

    ERROR_SCHEMA = ErrorOut
    DEFAULT_ERROR_RESPONSE_NAME = None

    def _register_responses(self) -> None:
        for status in http.HTTPStatus:
            if not 400 <= status < 600:
                continue
            headers: dict[str, Any] = {"X-Trace-Id": TRACE_HEADER}
            if status in (429, 503):
                headers["Retry-After"] = RETRY_AFTER
            response = {"description": status.phrase, "schema": ErrorOut, "headers": headers}
            prepare_response(response, self.spec, self.DEFAULT_RESPONSE_CONTENT_TYPE)
            self.spec.components.response(status.name, response, lazy=True)


def _add(responses: dict, status: int) -> None:
    responses.setdefault(str(status), http.HTTPStatus(status).name)


def _apply_traits(operation: dict, traits: dict) -> None:
    responses = operation.setdefault("responses", {})
    auth = traits.get("auth")
    if auth is None:
        operation.setdefault("security", [])
    else:
        sessions_only = auth["session_only"]
        operation["security"] = (
            [{"sessionToken": []}] if sessions_only else [{"apiToken": []}, {"sessionToken": []}]
        )
        for status in (401, 403, 429):
            _add(responses, status)
        needs = "a login session" if sessions_only else "an API token or a login session"
        if auth.get("scope"):
            needs += f"; an API token needs the `{auth['scope']}` scope"
            operation["x-required-scope"] = auth["scope"]
        if auth.get("admin"):
            needs += "; the admin role"
        operation["description"] = (
            operation.get("description", "") + f"\n\nTakes {needs}."
        ).strip()
    if traits.get("rate_limited"):
        _add(responses, 429)
        for status, response in responses.items():
            if isinstance(response, dict) and status.startswith("2"):
                response.setdefault("headers", {}).update(RATE_LIMIT_HEADERS)


class ContractPlugin(BasePlugin):
    """Apply the rules every `/v1` operation shares, and each operation's declared traits."""

    def operation_helper(self, path: str | None = None, operations: dict | None = None, **_: Any):
        for method, operation in (operations or {}).items():
            traits = operation.pop(TRAITS, {})
            responses = {str(status): doc for status, doc in operation.get("responses", {}).items()}
            operation["responses"] = responses
            if path and path.startswith("/v1/"):
                _add(responses, 400)  # any query value or body field can be refused
                _add(responses, 503)  # the database is down
                if method in BODY_METHODS:
                    _add(responses, 413)
                    _add(responses, 415)
                    _add(responses, 422)  # an object key that cannot be stored (api/edge/guards.py)
            _apply_traits(operation, traits)
            for response in responses.values():
                if isinstance(response, dict):
                    response.setdefault("headers", {})["X-Trace-Id"] = TRACE_HEADER


def field_properties(self: Any, field: fields.Field, ret: dict, **_: Any) -> dict:
    """A field's own OpenAPI shape (`openapi_property()`), and no NUL in any plain string.

    api/edge/guards.py refuses NUL in every string, so the document says so.
    """
    custom = getattr(field, "openapi_property", None)
    if custom is not None:
        return custom()
    ranges = [v for v in field.validators if isinstance(v, validate.Range)]
    exclusive: dict[str, bool] = {}
    for validator in ranges:  # apispec drops Range's exclusivity; OAS 3.0 spells it so
        if validator.min is not None and not validator.min_inclusive:
            exclusive["exclusiveMinimum"] = True
        if validator.max is not None and not validator.max_inclusive:
            exclusive["exclusiveMaximum"] = True
    if exclusive:
        return exclusive
    if isinstance(field, fields.Nested) and "anyOf" in ret:
        # apispec writes a nullable object as "anything or null"; mean "this object or null".
        return {"anyOf": [ret["anyOf"][0], {"type": "object", "nullable": True, "enum": [None]}]}
    plain = not any(key in ret for key in ("pattern", "format", "enum"))
    return {"pattern": "^[^\\x00]*$"} if isinstance(field, fields.String) and plain else {}

"""One JSON error shape for every 4xx and 5xx.

Views raise an `APIError` (or a subclass); routing errors, Werkzeug's HTTP
exceptions, webargs validation failures and unexpected exceptions are all turned
into `{"error": {"code", "message", "type", "param", "trace_id", "details"}}` here
(`type` and `param` are OpenAI's, so its clients show them). A database that
cannot be reached is a 503 with `Retry-After`. No stack trace or internal detail
ever reaches the client.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from flask import Flask, Response, jsonify
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException

from api.edge.contract import ERROR_TYPES
from api.observability.tracing import current_trace_id

log = logging.getLogger(__name__)

HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable_entity",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
    504: "gateway_timeout",
}


class APIError(Exception):
    """An error answered to the client; subclasses fix the status and default code."""

    status = 500
    code = "internal_error"
    message = "Internal server error."

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        status: int | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message
        self.code = code or self.code
        self.status = status or self.status
        self.details = details or {}
        self.headers = headers or {}


class BadRequest(APIError):
    status, code, message = 400, "bad_request", "The request is malformed."


class ValidationFailed(APIError):
    """A 400 whose message, unless given, names the first field at fault and why.

    Newer OpenAI SDKs show only `message`, so the reason must be in it.
    """

    status, code, message = 400, "validation_error", "Some fields are invalid."

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        details = kwargs.get("details") or {}
        super().__init__(message or first_problem(details) or self.message, **kwargs)


class Unprocessable(APIError):
    """Well formed, but not possible: the document allows it, the model or the account does not."""

    status, code, message = 422, "unprocessable", "The request cannot be carried out as given."


class Unauthorized(APIError):
    status, code, message = 401, "unauthorized", "Missing or invalid credentials."


class Forbidden(APIError):
    status, code, message = 403, "forbidden", "You are not allowed to do this."


class NotFound(APIError):
    status, code, message = 404, "not_found", "Not found."


class Conflict(APIError):
    status, code, message = 409, "conflict", "The request conflicts with the current state."


class PayloadTooLarge(APIError):
    status, code, message = 413, "payload_too_large", "The request body is too large."


class UnsupportedMediaType(APIError):
    status, code, message = 415, "unsupported_media_type", "Send a JSON body (application/json)."


class TooManyRequests(APIError):
    status, code, message = 429, "rate_limited", "Too many requests."


class ServiceUnavailable(APIError):
    status, code, message = 503, "service_unavailable", "The service is temporarily unavailable."


class GatewayTimeout(APIError):
    status, code, message = 504, "timeout", "The request took too long."


def error_response(
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """Build the one error body with its status and headers."""
    response = jsonify(error_body(status, code, message, details))
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def error_body(
    status: int, code: str, message: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The one error shape, as a dict (for a response, or an error event in a stream)."""
    details = details or {}
    return {
        "error": {
            "code": code,
            "message": message,
            "type": ERROR_TYPES.get(
                status, "server_error" if status >= 500 else "invalid_request_error"
            ),
            "param": _param(details) if status in PARAM_STATUSES else None,
            "trace_id": current_trace_id(),
            "details": details,
        }
    }


PARAM_STATUSES = {400, 404, 422}  # where `details` names fields


def _param(details: dict[str, Any]) -> str | None:
    """The first field named in `details` (OpenAI's `param`), or None (`_body`, `_query`)."""
    for name, value in details.items():
        if isinstance(value, list | dict) and not name.startswith("_"):
            return name
    return None


def first_problem(details: dict[str, Any]) -> str | None:
    """`field: reason` of the first field `_param` would name (`a[0].b: reason` when nested);
    the bare reason of a problem with the whole body; None when `details` names none."""
    named = _param(details)
    if named is None:
        return next((_reason(value) for value in details.values() if _reason(value)), None)
    path, value = named, details[named]
    while isinstance(value, dict) and value:
        key, value = next(iter(value.items()))
        path += f"[{key}]" if isinstance(key, int) or str(key).isdigit() else f".{key}"
    reason = _reason(value)
    return f"{path}: {reason}" if reason else None


def _reason(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value:
        return _reason(value[0])
    if isinstance(value, dict) and value:
        return _reason(next(iter(value.values())))
    return None


def _flatten_messages(messages: Any) -> dict[str, Any]:
    """Drop webargs' location level: {"json": {"email": [...]}} -> {"email": [...]}."""
    if not isinstance(messages, dict):
        return {"_request": messages}
    flat: dict[str, Any] = {}
    for location, fields in messages.items():
        if isinstance(fields, dict):
            flat.update(fields)
        else:
            flat[location] = fields
    return flat


def handle_api_error(error: APIError) -> Response:
    return error_response(error.status, error.code, error.message, error.details, error.headers)


def handle_http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    if "messages" in data:  # webargs / flask-smorest validation failure
        return handle_api_error(ValidationFailed(details=_flatten_messages(data["messages"])))
    headers = {
        name: value
        for name, value in error.get_headers()
        if name.lower() in {"allow", "retry-after", "www-authenticate"}
    }
    code = HTTP_CODES.get(status, "http_error")
    message = error.description or code.replace("_", " ")
    if status == 429:
        message = f"Rate limit exceeded ({error.description}). Retry later."
    return error_response(status, code, message, headers=headers)


def unexpected(error: Exception) -> APIError:
    """Log an error no code raised on purpose, and say what its answer is.

    A database that cannot be reached is a dependency down (503), not a bug; anything
    else is a 500 with no internal detail. Used by the handlers below, and by a stream
    that fails after its 200 (which can only answer in-band).
    """
    if isinstance(error, DBAPIError) and (
        error.connection_invalidated
        or isinstance(error.orig, psycopg.OperationalError)  # connecting, cut, cancelled
    ):
        log.error("database unavailable", extra={"error.type": type(error.orig).__name__})
        return ServiceUnavailable(
            "The service cannot reach its database; retry shortly.",
            code="database_unavailable",
            headers={"Retry-After": "5"},
        )
    log.exception("unhandled exception", exc_info=error)
    return APIError()


def handle_unexpected(error: Exception) -> Response:
    return handle_api_error(unexpected(error))


def register_error_handlers(app: Flask) -> None:
    """Answer every error with the JSON shape (registered after flask-smorest's own)."""
    app.register_error_handler(APIError, handle_api_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(Exception, handle_unexpected)

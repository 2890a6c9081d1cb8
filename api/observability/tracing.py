"""Trace ids: one id per request, from the client or made here.

The id comes from `X-Trace-Id` when it is 1-64 of `[A-Za-z0-9._-]`, else from a
valid W3C `traceparent`, else it is generated (32 hex). It lives in a context
variable so services, log records and background work can read it without it
being passed by hand, and it is echoed in the `X-Trace-Id` response header. Where the
id is a W3C trace id (32 hex, not all zeros: the generated ones, a traceparent's, or a
client's own of that form), the answer also carries a `traceparent` naming this server's
span of the trace, with the caller's sampled flag (else sampled), so a W3C tracer on
the client side joins the call without reading `X-Trace-Id`.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Mapping
from contextvars import ContextVar

from flask import Flask, Response, g, request
from werkzeug.datastructures import Headers

TRACE_HEADER = "X-Trace-Id"
_TRACE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_W3C_TRACE_ID = re.compile(r"(?!0{32})[0-9a-f]{32}")

_current: ContextVar[str | None] = ContextVar("trace_id", default=None)


def new_trace_id() -> str:
    return uuid.uuid4().hex


def trace_id_from_headers(headers: Mapping[str, str] | Headers) -> str:
    """Pick the request's trace id: a valid client id, a valid traceparent, or a new one."""
    client_id = headers.get(TRACE_HEADER, "")
    if _TRACE_ID.fullmatch(client_id):
        return client_id
    match = _TRACEPARENT.fullmatch(headers.get("traceparent", "").strip().lower())
    if match:
        version, trace_id, parent_id, _ = match.groups()
        if version != "ff" and trace_id != "0" * 32 and parent_id != "0" * 16:
            return trace_id
    return new_trace_id()


def traceparent_for(trace_id: str, incoming: str = "") -> str | None:
    """A `traceparent` for this server's span of `trace_id`; None if it is not a W3C id."""
    if not _W3C_TRACE_ID.fullmatch(trace_id):
        return None
    match = _TRACEPARENT.fullmatch(incoming.strip().lower())
    flags = match.group(4) if match and match.group(2) == trace_id else "01"
    return f"00-{trace_id}-{secrets.token_hex(8)}-{flags}"


def current_trace_id() -> str | None:
    """The trace id of the work in progress, or None outside any request or job."""
    return _current.get()


def bind_trace_id(trace_id: str | None) -> object:
    """Make `trace_id` current (for background work); returns a token for `reset_trace_id`."""
    return _current.set(trace_id)


def reset_trace_id(token: object) -> None:
    """Undo `bind_trace_id`; from another context (a stream closed elsewhere) just clear it."""
    try:
        _current.reset(token)  # type: ignore[arg-type]
    except ValueError:
        _current.set(None)


def _start_trace() -> None:
    g.trace_id = trace_id_from_headers(request.headers)
    g.trace_token = _current.set(g.trace_id)


def _echo_trace(response: Response) -> Response:
    trace_id = g.get("trace_id") or current_trace_id() or ""
    response.headers[TRACE_HEADER] = trace_id
    parent = traceparent_for(trace_id, request.headers.get("traceparent", ""))
    if parent is not None:
        response.headers["traceparent"] = parent
    return response


def _end_trace(_exc: BaseException | None) -> None:
    token = g.pop("trace_token", None)
    if token is not None:
        reset_trace_id(token)


def init_app(app: Flask) -> None:
    app.before_request(_start_trace)
    app.after_request(_echo_trace)
    app.teardown_request(_end_trace)

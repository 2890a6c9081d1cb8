"""`@metered`: record every authenticated call to an API endpoint exactly once.

A view fills `meter()` with the model and token counts; the call becomes one
usage line, handed to this worker's spool (`api.usage.spool`) before the answer
leaves, or written straight to the database when no spool is configured (the
test suite) or its disk fails. Redis is never involved, so a Redis restart
cannot lose a call. For a streamed answer the line is written when the stream
closes, with what was actually sent. A call refused with 429 writes no row of its
own: it adds one to its user's count for the day and endpoint (`rejected_calls`),
so a client hammering its limit cannot grow the database without bound.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Flask, current_app, g, has_app_context
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException

from api.db_types import utcnow
from api.edge.errors import APIError
from api.extensions import db
from api.observability.tracing import current_trace_id
from api.usage.spool import usage_spool, write_lines

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger(__name__)


@dataclass
class Meter:
    """What one call used; filled in by the view (or its stream) as it goes."""

    user_id: int
    token_id: int | None
    endpoint: str
    trace_id: str | None
    started: float
    model: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    units: int = 0  # a handler model's units (images, items ...)
    status: int = 500


def meter() -> Meter:
    return g.meter


def save_record(app: Flask, usage: Meter) -> None:
    """Record the call: in the request's app context, or (a closed stream) a new one."""
    if has_app_context():
        _save(usage)
    else:
        with app.app_context():
            _save(usage)


def _line(usage: Meter) -> dict[str, Any]:
    """The call as one usage line: a row, or (a 429) one more to the day's count."""
    now = utcnow()
    if usage.status == 429:
        return {
            "kind": "rejected",
            "user_id": usage.user_id,
            "day": now.date().isoformat(),
            "endpoint": usage.endpoint,
        }
    return {
        "kind": "record",
        "request_id": uuid.uuid4().hex,
        "user_id": usage.user_id,
        "token_id": usage.token_id,
        "endpoint": usage.endpoint,
        "model": usage.model,
        "status": usage.status,
        "tokens_in": usage.tokens_in,
        "tokens_out": usage.tokens_out,
        "units": usage.units,
        "latency_ms": round((time.perf_counter() - usage.started) * 1000, 3),
        "trace_id": usage.trace_id,
        "created_at": now.isoformat(),
    }


def _save(usage: Meter) -> None:
    line = _line(usage)
    spool = usage_spool()
    if spool is not None:
        try:
            spool.append(line)
            return
        except OSError as error:  # the spool's disk is full or gone: write it directly
            log.error("usage spool unwritable", extra={"error.type": type(error).__name__})
    _write_now(line)


def _first_use_this_minute(token_id: int | None) -> bool:
    """Throttle direct `last_used_at` writes to one a minute per token and process."""
    if token_id is None:
        return False
    noted: dict[int, float] = current_app.extensions.setdefault("token_use_noted", {})
    now = time.monotonic()
    if now - noted.get(token_id, -60.0) < 60.0:
        return False
    noted[token_id] = now
    return True


def _write_now(line: dict[str, Any]) -> None:
    """Commit one usage line in this request's session; a failure is logged, never raised."""
    try:
        write_lines([line], note_use=_first_use_this_minute(line.get("token_id")))
        db.session.commit()
    except SQLAlchemyError as error:
        db.session.rollback()
        log.error(
            "usage record not written",
            extra={"error.type": type(error).__name__, "event.action": line["endpoint"]},
        )


def metered(endpoint: str) -> Callable[[F], F]:
    """Record each call of the view (after `authenticate`), its status and its usage."""

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            principal = g.principal
            usage = Meter(
                user_id=principal.user_id,
                token_id=principal.token_id,
                endpoint=endpoint,
                trace_id=current_trace_id(),
                started=time.perf_counter(),
            )
            g.meter = usage
            app = current_app._get_current_object()  # type: ignore[attr-defined]
            try:
                response = current_app.make_response(view(*args, **kwargs))
            except Exception as error:
                if isinstance(error, APIError):
                    usage.status = error.status
                elif isinstance(error, HTTPException):
                    usage.status = error.code or 500
                db.session.rollback()
                save_record(app, usage)
                raise
            usage.status = response.status_code
            if response.is_streamed:
                response.call_on_close(lambda: save_record(app, usage))
            else:
                save_record(app, usage)
            return response

        return wrapper  # type: ignore[return-value]

    return decorator

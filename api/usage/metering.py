"""`@metered`: record every authenticated call to an API endpoint exactly once.

The row is written straight to the database (never buffered in Redis), so a
Redis restart cannot lose a call. A view fills `meter()` with the model and token
counts. For a streamed answer the row is written when the stream closes, with
what was actually sent. A call refused with 429 writes no row of its own: it adds
one to its user's count for the day and endpoint (`rejected_calls`), so a client
hammering its limit cannot grow the database without bound.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Flask, current_app, g, has_app_context
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException

from api.db_types import utcnow
from api.errors import APIError
from api.extensions import db
from api.observability.tracing import current_trace_id
from api.usage.models import InferenceRecord, RejectedCalls

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
    status: int = 500


def meter() -> Meter:
    return g.meter


def save_record(app: Flask, usage: Meter) -> None:
    """Write the usage row: in the request's session, or (a closed stream) a new app context."""
    if has_app_context():
        _write_record(usage)
    else:
        with app.app_context():
            _write_record(usage)


def _count_rejection(usage: Meter) -> None:
    """Add one to the user's 429 count for today and this endpoint (an upsert)."""
    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = RejectedCalls.__table__
    statement = insert(table).values(
        user_id=usage.user_id, day=utcnow().date(), endpoint=usage.endpoint, count=1
    )
    db.session.execute(
        statement.on_conflict_do_update(
            index_elements=[table.c.user_id, table.c.day, table.c.endpoint],
            set_={"count": table.c.count + 1},
        )
    )


def _record(usage: Meter) -> InferenceRecord:
    return InferenceRecord(
        user_id=usage.user_id,
        token_id=usage.token_id,
        endpoint=usage.endpoint,
        model=usage.model,
        status=usage.status,
        tokens_in=usage.tokens_in,
        tokens_out=usage.tokens_out,
        latency_ms=round((time.perf_counter() - usage.started) * 1000, 3),
        trace_id=usage.trace_id,
    )


def _write_record(usage: Meter) -> None:
    """Commit one usage row (or a 429's count); a database failure is logged, never raised."""
    try:
        if usage.status == 429:
            _count_rejection(usage)
        else:
            db.session.add(_record(usage))
        db.session.commit()
    except SQLAlchemyError as error:
        db.session.rollback()
        log.error(
            "usage record not written",
            extra={"error.type": type(error).__name__, "event.action": usage.endpoint},
        )


def metered(endpoint: str) -> Callable[[F], F]:
    """Record each call of the view (after `authenticate`), its status and its usage."""

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            principal = g.principal
            usage = Meter(
                user_id=principal.user.id,
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

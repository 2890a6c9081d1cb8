"""Usage summaries: per day, per token (or user) and endpoint."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import case, func, select

from api.auth.models import User
from api.db_types import utcnow
from api.edge.errors import NotFound
from api.extensions import db
from api.usage.models import HistoryEntry, InferenceRecord, RejectedCalls

if TYPE_CHECKING:
    from api.usage.metering import Meter

COLUMNS = [
    "date",
    "user_id",
    "email",
    "token_id",
    "endpoint",
    "model",
    "requests",
    "tokens_in",
    "tokens_out",
    "units",
    "errors",
]


def summarize_usage(
    days: int, *, user_id: int | None = None, token_id: int | None = None
) -> list[dict[str, Any]]:
    """Totals per UTC day, user, token, endpoint and model over the last `days` days.

    Each row carries its user's email (the admin's view names people, not ids); batch
    lines are the rows whose endpoint starts with `batch_`.
    """
    since = (utcnow() - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    day = func.date(InferenceRecord.created_at)
    keys = (
        day,
        InferenceRecord.user_id,
        InferenceRecord.token_id,
        InferenceRecord.endpoint,
        InferenceRecord.model,
    )
    query = (
        select(
            day.label("date"),
            InferenceRecord.user_id,
            User.email,
            InferenceRecord.token_id,
            InferenceRecord.endpoint,
            InferenceRecord.model,
            func.count().label("requests"),
            func.coalesce(func.sum(InferenceRecord.tokens_in), 0).label("tokens_in"),
            func.coalesce(func.sum(InferenceRecord.tokens_out), 0).label("tokens_out"),
            func.coalesce(func.sum(InferenceRecord.units), 0).label("units"),
            func.sum(case((InferenceRecord.status >= 400, 1), else_=0)).label("errors"),
        )
        .join(User, User.id == InferenceRecord.user_id)
        .where(InferenceRecord.created_at >= since)
        .group_by(*keys, User.email)
        .order_by(*keys)
    )
    if user_id is not None:
        query = query.where(InferenceRecord.user_id == user_id)
    if token_id is not None:
        query = query.where(InferenceRecord.token_id == token_id)
    return [
        {
            **row._asdict(),
            "date": str(row.date),
            "units": int(row.units or 0),
            "errors": int(row.errors or 0),
        }
        for row in db.session.execute(query)
    ]


def summarize_rejections(days: int, *, user_id: int | None = None) -> list[dict[str, Any]]:
    """Calls refused with 429 per UTC day, user and endpoint over the last `days` days."""
    since = (utcnow() - timedelta(days=days - 1)).date()
    query = (
        select(RejectedCalls, User.email)
        .join(User, User.id == RejectedCalls.user_id)
        .where(RejectedCalls.day >= since)
        .order_by(RejectedCalls.day, RejectedCalls.user_id, RejectedCalls.endpoint)
    )
    if user_id is not None:
        query = query.where(RejectedCalls.user_id == user_id)
    return [
        {
            "date": str(row.day),
            "user_id": row.user_id,
            "email": email,
            "endpoint": row.endpoint,
            "count": row.count,
        }
        for row, email in db.session.execute(query)
    ]


def usage_csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def save_history(
    *,
    user_id: int,
    token_id: int | None,
    model: str,
    prompt: str,
    completion: str,
    finish_reason: str | None,
    prompt_tokens: int,
    completion_tokens: int,
    trace_id: str | None,
) -> HistoryEntry:
    entry = HistoryEntry(
        user_id=user_id,
        token_id=token_id,
        model=model,
        prompt=prompt,
        completion=completion,
        finish_reason=finish_reason,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        trace_id=trace_id,
    )
    db.session.add(entry)
    db.session.commit()
    return entry


def keep_completion(
    usage: Meter,
    prompt: str,
    completion: str,
    finish_reason: str | None,
    prompt_tokens: int,
    completion_tokens: int,
) -> HistoryEntry:
    """Keep one generated choice in the caller's history, under the call's meter.

    The meter carries the user, token, model and trace id: a stream ends after the
    request's trace context, so they are read from it rather than from the request.
    """
    return save_history(
        user_id=usage.user_id,
        token_id=usage.token_id,
        model=usage.model or "",
        prompt=prompt,
        completion=completion,
        finish_reason=finish_reason,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        trace_id=usage.trace_id,
    )


def list_history(
    user_id: int, limit: int, before: int | None, *, token_id: int | None = None
) -> list[HistoryEntry]:
    """The user's completions (only `token_id`'s, if given), newest first; `before` pages by id."""
    query = select(HistoryEntry).where(HistoryEntry.user_id == user_id)
    if token_id is not None:
        query = query.where(HistoryEntry.token_id == token_id)
    if before is not None:
        query = query.where(HistoryEntry.id < before)
    return list(db.session.scalars(query.order_by(HistoryEntry.id.desc()).limit(limit)))


def delete_history(user_id: int, entry_id: int, *, token_id: int | None = None) -> None:
    """Delete one of the user's completions (only one `token_id` made, when given)."""
    entry = db.session.get(HistoryEntry, entry_id)
    if (
        entry is None
        or entry.user_id != user_id
        or (token_id is not None and entry.token_id != token_id)
    ):
        raise NotFound("No such history entry.", code="history_not_found")
    db.session.delete(entry)
    db.session.commit()

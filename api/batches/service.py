"""Batches: create (within the daily quota), read, list and cancel; the worker runs them.

Creating a batch stores its row and queues it on Celery; if the broker cannot take
it, the row is enough: `tasks.recover_batches_task` queues every batch whose lease (or
queue grace) has lapsed. Lines draw on `BATCH_DAILY_LINES` per user and UTC day,
counted at creation from the input file's lines, never on the per-minute limit, and
a user has at most `BATCH_ACTIVE_PER_USER` unfinished batches. Those checks run under
a lock on the user's row, so concurrent creates are checked one after another.
"""

from __future__ import annotations

import logging
import re
import secrets
from datetime import datetime, time, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import func, select, update

from api.batches.models import ACTIVE_STATUSES, Batch
from api.batches.tasks import enqueue, queue_grace
from api.db_types import utcnow
from api.edge.errors import (
    Conflict,
    Forbidden,
    NotFound,
    TooManyRequests,
    Unprocessable,
)
from api.edge.paging import page_after
from api.extensions import db
from api.files import service as files
from api.files.schemas import unix

log = logging.getLogger(__name__)
WINDOW_PATTERN = re.compile(r"^([1-9][0-9]{0,4})([smh])$")
MIN_WINDOW_S, MAX_WINDOW_S = 10, 7 * 86400


SCOPES = {
    "/v1/embeddings": "embed",
    "/v1/completions": "generate",
    "/v1/chat/completions": "generate",
}


def window_seconds(window: str) -> int:
    """`24h` (OpenAI's only value), or any of 10s to 168h written as `<n>s|m|h`."""
    match = WINDOW_PATTERN.match(window)
    seconds = 0
    if match:
        seconds = int(match.group(1)) * {"s": 1, "m": 60, "h": 3600}[match.group(2)]
    if not MIN_WINDOW_S <= seconds <= MAX_WINDOW_S:
        raise Unprocessable(
            details={"completion_window": ["Give e.g. 24h: 10s to 168h, as <n>s, <n>m or <n>h."]}
        )
    return seconds


def check_metadata(metadata: dict[str, str] | None) -> None:
    """OpenAI's limits on metadata that OpenAPI 3.0 cannot state: 16 pairs, keys of 64."""
    if not metadata:
        return
    problems = [
        f"Key {key[:70]!r} is longer than 64 characters." for key in metadata if len(key) > 64
    ]
    if len(metadata) > 16:
        problems.append(f"{len(metadata)} pairs; at most 16.")
    if problems:
        raise Unprocessable(details={"metadata": problems})


def lines_today(user_id: int, now: datetime) -> int:
    midnight = datetime.combine(now.date(), time(), tzinfo=now.tzinfo)
    total = db.session.scalar(
        select(func.coalesce(func.sum(Batch.line_count), 0)).where(
            Batch.user_id == user_id, Batch.created_at >= midnight
        )
    )
    return int(total or 0)


def _check_quota(user_id: int, adding: int, now: datetime) -> None:
    quota = current_app.config["BATCH_DAILY_LINES"]
    used = lines_today(user_id, now)
    if used + adding > quota:
        midnight = datetime.combine(now.date() + timedelta(days=1), time(), tzinfo=now.tzinfo)
        retry = max(1, int((midnight - now).total_seconds()))
        raise TooManyRequests(
            f"This batch has {adding} requests; {quota - used} of your {quota} batch "
            "requests for today are left.",
            code="batch_quota_exceeded",
            details={"quota": quota, "used": used, "requested": adding},
            headers={"Retry-After": str(retry)},
        )


def _check_active(user_id: int) -> None:
    limit = current_app.config["BATCH_ACTIVE_PER_USER"]
    active = db.session.scalar(
        select(func.count())
        .select_from(Batch)
        .where(Batch.user_id == user_id, Batch.status.in_(ACTIVE_STATUSES))
    )
    if (active or 0) >= limit:
        raise TooManyRequests(
            f"You have {active} unfinished batches, the most at once; wait for one to end.",
            code="too_many_active_batches",
            details={"active": active, "limit": limit},
            headers={"Retry-After": "60"},
        )


def create_batch(
    *,
    user_id: int,
    token_id: int | None,
    session_id: str | None,
    scopes: frozenset[str],
    trace_id: str | None,
    input_file_id: str,
    endpoint: str,
    completion_window: str,
    metadata: dict[str, str] | None,
    output_expires_s: int | None,
) -> Batch:
    """Store a batch in `validating` and queue it; 429 past the daily quota."""
    window = window_seconds(completion_window)
    check_metadata(metadata)
    scope = SCOPES[endpoint]
    if scope not in scopes:
        raise Forbidden(
            f"This token lacks the '{scope}' scope that {endpoint} needs.",
            code="insufficient_scope",
            details={"required_scope": scope},
        )
    source = files.find_file(user_id, input_file_id)
    if source.purpose != "batch":
        raise Unprocessable(details={"input_file_id": ["Upload the input with purpose 'batch'."]})
    # One check at a time per user (until the commit): concurrent creates cannot all fit.
    files.lock_account(user_id)
    now = utcnow()
    _check_active(user_id)
    _check_quota(user_id, source.line_count, now)
    used = files.used_bytes(user_id)
    if used >= current_app.config["FILES_QUOTA_BYTES"]:  # no room left for its output
        raise files.quota_error(used, 0)
    batch = Batch(
        id="batch_" + secrets.token_hex(16),
        user_id=user_id,
        token_id=token_id,
        session_id=session_id,
        trace_id=trace_id,
        endpoint=endpoint,
        input_file_id=source.id,
        completion_window=completion_window,
        status="validating",
        line_count=source.line_count,
        batch_metadata=metadata,
        output_expires_s=output_expires_s,
        created_at=now,
        expires_at=now + timedelta(seconds=window),
        lease_expires_at=now + queue_grace(),
    )
    db.session.add(batch)
    db.session.commit()
    enqueue(batch.id)
    return batch


def find_batch(user_id: int, batch_id: str) -> Batch:
    """The user's batch, or 404 (also when someone else owns it)."""
    batch = db.session.get(Batch, batch_id) if len(batch_id) <= 40 else None
    if batch is None or batch.user_id != user_id:
        raise NotFound(
            f"No batch {batch_id!r}.", code="batch_not_found", details={"batch_id": batch_id}
        )
    return batch


def list_batches(
    user_id: int, *, after: str | None, order: str, limit: int
) -> tuple[list[Batch], bool]:
    mark = find_batch(user_id, after) if after is not None else None
    query = select(Batch).where(Batch.user_id == user_id)
    return page_after(query, Batch, mark, order=order, limit=limit)


def cancel_batch(user_id: int, batch_id: str) -> Batch:
    """Ask the worker to stop; finished lines are kept. 409 once the batch has ended."""
    batch = find_batch(user_id, batch_id)
    if batch.status in ("validating", "in_progress"):
        # Only from the status read: a worker may have moved the batch on meanwhile.
        moved = db.session.execute(
            update(Batch)
            .where(Batch.id == batch.id, Batch.status == batch.status)
            .values(status="cancelling", cancelling_at=utcnow())
        )
        db.session.commit()
        db.session.refresh(batch)
        if moved.rowcount != 1:  # type: ignore[attr-defined]
            return cancel_batch(user_id, batch_id)
    elif batch.status != "cancelling":
        raise Conflict(
            f"A batch that is {batch.status} cannot be cancelled.",
            code="batch_not_cancellable",
            details={"status": batch.status},
        )
    return batch


def batch_object(batch: Batch) -> dict[str, Any]:
    """The batch as OpenAI's API shows it."""

    total = batch.total or batch.line_count
    return {
        "id": batch.id,
        "object": "batch",
        "endpoint": batch.endpoint,
        "model": batch.model,
        "errors": {"object": "list", "data": batch.errors} if batch.errors else None,
        "input_file_id": batch.input_file_id,
        "completion_window": batch.completion_window,
        "status": batch.status,
        "output_file_id": batch.output_file_id,
        "error_file_id": batch.error_file_id,
        "created_at": unix(batch.created_at),
        "in_progress_at": unix(batch.in_progress_at),
        "expires_at": unix(batch.expires_at),
        "finalizing_at": unix(batch.finalizing_at),
        "completed_at": unix(batch.completed_at),
        "failed_at": unix(batch.failed_at),
        "expired_at": unix(batch.expired_at),
        "cancelling_at": unix(batch.cancelling_at),
        "cancelled_at": unix(batch.cancelled_at),
        "request_counts": {
            "total": total,
            "completed": batch.completed,
            "failed": batch.failed,
        },
        "usage": {
            "input_tokens": batch.input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": batch.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": batch.input_tokens + batch.output_tokens,
        },
        "metadata": batch.batch_metadata,
    }

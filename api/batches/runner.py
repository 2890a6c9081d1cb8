"""Running one batch to its end, resumable at every step by any worker.

A worker first claims the batch: a lease in its row (owner, expiry) that it renews
as it goes. Lines run in chunks; a chunk's answers are written as part files
(atomic), its usage rows are metered with ids derived from (batch, line), and only
then is its marker written. A worker that dies loses at most the chunk it was in:
the next one (after the lease lapses, `tasks.recover_batches`) starts after the
last marker, and a chunk run twice writes the same part files and inserts no usage
row twice. The finalizer joins the parts into the output and error files, under
ids derived from the batch, so it too can run twice. Between steps the worker
reads the row: a batch being cancelled, past its window, or whose owner was
disabled or whose token was revoked stops, keeping the lines already done.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from flask import current_app
from sqlalchemy import or_, select

from api.batches.ending import BatchEnding, log_failure
from api.batches.execute import embed_lines, generate_line
from api.batches.lease import LeaseLost, Stopped, Yielded, new_owner
from api.batches.lines import Entry, InputProblems, load_lines
from api.batches.models import ACTIVE_STATUSES, Batch
from api.db_types import utcnow
from api.extensions import db
from api.observability.tracing import bind_trace_id, reset_trace_id

log = logging.getLogger(__name__)
EMBED_CHUNK_TEXTS = 256


class BatchRun(BatchEnding):
    """One worker's run of one batch: its lease, parts and end come from the classes above."""

    def run(self) -> str:
        """Take the batch from where it is to a final status; return that status."""
        batch = self.batch()
        entries: list[Entry] | None = None
        errors = None
        try:
            self.checkpoint(force=True)
            if batch.status == "validating":
                try:
                    entries = self.read_entries(batch)
                except InputProblems as problems:
                    return self.fail(batch, problems.errors)
                batch.status, batch.in_progress_at, batch.total = (
                    "in_progress",
                    utcnow(),
                    len(entries),
                )
                batch.model = entries[0].model
                db.session.commit()
            if batch.status == "in_progress":
                entries = entries or self.read_entries(batch)
                self.work(batch, entries)
                batch.status, batch.finalizing_at = "finalizing", utcnow()
                db.session.commit()
            ending = "cancelled" if batch.status == "cancelling" else "completed"
        except Stopped as stop:
            ending, errors = stop.ending, stop.errors
        except InputProblems as problems:  # the input vanished under a running batch
            return self.fail(batch, problems.errors)
        return self.finalize(batch, ending, entries, errors)

    def work(self, batch: Batch, entries: list[Entry]) -> None:
        progress = self.progress()
        position = progress.position
        key = self.input_key(batch)
        while position < len(entries):
            self.checkpoint(force=True)
            if time.monotonic() - self._started >= self.slice_s and self.others_waiting(batch):
                raise Yielded()
            end = self.chunk_end(batch, entries, position)
            with self.storage.open(key) as file:
                lines = load_lines(file, entries[position:end])
            started = time.perf_counter()
            if batch.endpoint == "/v1/embeddings":
                outcomes = embed_lines(lines, self.checkpoint)
            else:
                outcomes = [generate_line(line, batch.endpoint) for line in lines]
            elapsed_ms = (time.perf_counter() - started) * 1000
            marker = self.keep_chunk(batch, position, lines, outcomes, elapsed_ms, progress)
            progress.add(marker)
            batch.completed, batch.failed = progress.completed, progress.failed
            batch.input_tokens, batch.output_tokens = progress.tokens_in, progress.tokens_out
            db.session.commit()
            position = end

    @property
    def slice_s(self) -> float:
        return float(current_app.config["BATCH_SLICE_S"])

    def others_waiting(self, batch: Batch) -> bool:
        """Whether another user's batch waits for a worker (queued, or its worker gone)."""
        waiting = db.session.scalar(
            select(Batch.id)
            .where(
                Batch.user_id != batch.user_id,
                Batch.status.in_(ACTIVE_STATUSES),
                or_(Batch.lease_owner.is_(None), Batch.lease_expires_at < utcnow()),
            )
            .limit(1)
        )
        db.session.commit()
        return waiting is not None

    @staticmethod
    def chunk_end(batch: Batch, entries: list[Entry], position: int) -> int:
        """Embeddings: lines up to `EMBED_CHUNK_TEXTS` texts. Generation: one line."""
        if batch.endpoint != "/v1/embeddings":
            return position + 1
        texts, end = 0, position
        while end < len(entries) and (end == position or texts < EMBED_CHUNK_TEXTS):
            texts += entries[end].inputs
            end += 1
        return end


def run_batch(
    batch_id: str, owner: str | None = None, requeue: Callable[[str], None] | None = None
) -> str | None:
    """Run `batch_id` if no live worker has it; its final status, or None when not run.

    A batch that yields its worker is handed to `requeue` (the Celery task passes
    `tasks.enqueue`); without one, the recovery takes it up after the queue grace.
    """
    run = BatchRun(batch_id, owner or new_owner())
    if not run.claim():
        return None
    batch = run.batch()
    token = bind_trace_id(batch.trace_id)  # its log lines join the creating request
    try:
        if batch.attempts > current_app.config["BATCH_MAX_ATTEMPTS"]:
            return run.give_up()
        return run.run()
    except LeaseLost:
        log.warning("batch taken over by another worker", extra={"event.action": "batch-lease"})
        return None
    except Yielded:  # to the back of the queue: batches of other users run first
        run_safely(run.release, retry_in_s=_grace_s(), failed=False)
        if requeue is not None:
            requeue(batch_id)
        log.info("batch yields its worker", extra={"event.action": "batch-yield"})
        return None
    except Exception as error:  # taken up again once its lease lapses, up to the attempt limit
        log_failure("batch attempt failed", error)
        run_safely(run.release, retry_in_s=current_app.config["BATCH_LEASE_S"])
        return None
    finally:
        reset_trace_id(token)


def _grace_s() -> float:
    return float(current_app.config["BATCH_QUEUE_GRACE_S"])


def run_safely(action: Any, **kwargs: Any) -> None:
    try:
        action(**kwargs)
    except Exception as error:  # the database is down too: the lease lapses by itself
        log.error("batch lease not released", extra={"error.type": type(error).__name__})

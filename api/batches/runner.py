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

import hashlib
import json
import logging
import socket
import time
import traceback
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy import or_, select, update

from api.auth.models import AuthSession, User
from api.batches.execute import Interrupted, Outcome, embed_lines, generate_line
from api.batches.lines import ENDPOINTS, Entry, InputProblems, Line, load_lines, parse_input
from api.batches.models import ACTIVE_STATUSES, Batch
from api.db_types import utcnow
from api.extensions import db
from api.files import service as files
from api.files.models import StoredFile
from api.files.storage import file_storage, read_chunks
from api.observability.tracing import bind_trace_id, reset_trace_id
from api.tokens.models import ApiToken
from api.usage.spool import write_lines

log = logging.getLogger(__name__)
EMBED_CHUNK_TEXTS = 256
CHECK_EVERY_S = 1.0
EXPIRED = {
    "code": "batch_expired",
    "message": "This request could not be executed before the completion window expired.",
}


class Stopped(Interrupted):
    """The batch must end now as `ending` (cancelled, expired, or failed with `errors`)."""

    def __init__(self, ending: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(ending)
        self.ending = ending
        self.errors = errors


class Yielded(Interrupted):
    """Another user's batch waits: give the worker up after this slice, queue again."""


class LeaseLost(Interrupted):
    """Another worker holds the batch now: stop without writing anything more."""


def new_owner() -> str:
    return f"{socket.gethostname()[:32]}:{uuid.uuid4().hex[:12]}"


def request_id(batch_id: str, position: int) -> str:
    """The id of line `position`'s request: the same however often the line runs."""
    return hashlib.sha256(f"{batch_id}:{position}".encode()).hexdigest()[:32]


@dataclass
class Progress:
    position: int = 0
    completed: int = 0
    failed: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    bytes: int = 0

    def add(self, marker: dict[str, Any]) -> None:
        self.position = max(self.position, marker["end"])
        self.completed += marker["completed"]
        self.failed += marker["failed"]
        self.tokens_in += marker["tokens_in"]
        self.tokens_out += marker["tokens_out"]
        self.bytes += marker.get("bytes", 0)


class BatchRun:
    """One worker's run of one batch."""

    def __init__(self, batch_id: str, owner: str) -> None:
        self.batch_id = batch_id
        self.owner = owner
        self.lease = timedelta(seconds=current_app.config["BATCH_LEASE_S"])
        self.storage = file_storage()
        self.parts = f"batches/{batch_id}"
        self._checked = 0.0
        self._started = time.monotonic()

    # -- the lease ---------------------------------------------------------------
    def claim(self) -> bool:
        now = utcnow()
        claimed = db.session.execute(
            update(Batch)
            .where(
                Batch.id == self.batch_id,
                Batch.status.in_(ACTIVE_STATUSES),
                or_(
                    Batch.lease_owner.is_(None),
                    Batch.lease_expires_at < now,
                    Batch.lease_owner == self.owner,
                ),
            )
            .values(
                lease_owner=self.owner,
                lease_expires_at=now + self.lease,
                attempts=Batch.attempts + 1,
            )
        )
        db.session.commit()
        return claimed.rowcount == 1  # type: ignore[attr-defined]

    def release(self, retry_in_s: float = 0.0, failed: bool = True) -> None:
        """Give the lease up; an unfinished batch is taken up again after `retry_in_s`.

        A batch that only gave its turn up (`failed=False`) gets its attempt back.
        """
        db.session.rollback()
        db.session.execute(
            update(Batch)
            .where(Batch.id == self.batch_id, Batch.lease_owner == self.owner)
            .values(
                lease_owner=None,
                lease_expires_at=utcnow() + timedelta(seconds=retry_in_s),
                attempts=Batch.attempts - (0 if failed else 1),
            )
        )
        db.session.commit()

    def checkpoint(self, force: bool = False) -> None:
        """Renew the lease and read the row (at most once a second): stop when told to."""
        if not force and time.monotonic() - self._checked < CHECK_EVERY_S:
            return
        self._checked = time.monotonic()
        now = utcnow()
        renewed = db.session.execute(
            update(Batch)
            .where(Batch.id == self.batch_id, Batch.lease_owner == self.owner)
            .values(lease_expires_at=now + self.lease)
        )
        db.session.commit()
        if renewed.rowcount != 1:  # type: ignore[attr-defined]
            raise LeaseLost()
        batch = self.batch()
        db.session.refresh(batch)
        if batch.status == "cancelling" or not _owner_allowed(batch):
            raise Stopped("cancelled")
        if now >= batch.expires_at:
            raise Stopped("expired")

    def batch(self) -> Batch:
        batch = db.session.get(Batch, self.batch_id)
        assert batch is not None
        return batch

    # -- the run -----------------------------------------------------------------
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

    def input_key(self, batch: Batch) -> str:
        source = db.session.get(StoredFile, batch.input_file_id)
        if source is None or not self.storage.exists(source.storage_key):
            message = "The input file is gone."
            raise InputProblems([{"code": "input_file_missing", "message": message, "line": None}])
        return source.storage_key

    def read_entries(self, batch: Batch) -> list[Entry]:
        """The file's requests, read as a stream, each line checked and bounded."""
        with self.storage.open(self.input_key(batch)) as file:
            limit = current_app.config["MAX_CONTENT_LENGTH"]
            return parse_input(read_chunks(file), batch.endpoint, limit)

    def markers(self) -> list[dict[str, Any]]:
        found = []
        for key in self.storage.keys(self.parts):
            if key.endswith(".done"):
                with self.storage.open(key) as file:
                    found.append(json.load(file))
        return sorted(found, key=lambda marker: marker["start"])

    def progress(self) -> Progress:
        progress = Progress()
        for marker in self.markers():
            progress.add(marker)
        return progress

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

    def keep_chunk(
        self,
        batch: Batch,
        start: int,
        lines: list[Line],
        outcomes: list[Outcome],
        elapsed_ms: float,
        progress: Progress,
    ) -> dict[str, Any]:
        """Write the chunk's part files, meter its lines, then its marker (in that order)."""
        answered: dict[bool, list[bytes]] = {True: [], False: []}
        for offset, (line, outcome) in enumerate(zip(lines, outcomes, strict=True)):
            rid = request_id(batch.id, start + offset)
            record = {
                "id": f"batch_req_{rid}",
                "custom_id": line.custom_id,
                "response": {
                    "status_code": outcome.status,
                    "request_id": rid,
                    "body": outcome.body,
                },
                "error": None,
            }
            answered[outcome.status == 200].append(_jsonl(record))
        size = sum(map(len, answered[True])) + sum(map(len, answered[False]))
        self.hold_storage(batch, progress.bytes + size)
        name = f"{self.parts}/{start:08d}"
        self.storage.put(f"{name}.out", iter(answered[True]))
        self.storage.put(f"{name}.err", iter(answered[False]))
        self.meter(batch, start, outcomes, elapsed_ms / max(1, len(lines)))
        marker = {
            "start": start,
            "end": start + len(lines),
            "completed": len(answered[True]),
            "failed": len(answered[False]),
            "tokens_in": sum(outcome.tokens_in for outcome in outcomes),
            "tokens_out": sum(outcome.tokens_out for outcome in outcomes),
            "bytes": size,
        }
        self.storage.put(f"{name}.done", iter([json.dumps(marker).encode()]))
        return marker

    def hold_storage(self, batch: Batch, total: int) -> None:
        """Count `total` bytes of output against the user's quota, or stop the batch failed."""
        files.lock_account(batch.user_id)  # until the commit below, like an upload's check
        others = files.used_bytes(batch.user_id) - batch.output_bytes
        quota = current_app.config["FILES_QUOTA_BYTES"]
        if others + total > quota:
            db.session.rollback()
            message = (
                f"The output would take your files to {others + total} bytes, past your "
                f"storage quota of {quota}; the lines done so far are in the output file."
            )
            raise Stopped("failed", [{"code": "storage_quota_exceeded", "message": message}])
        batch.output_bytes = total
        db.session.commit()

    def meter(self, batch: Batch, start: int, outcomes: list[Outcome], line_ms: float) -> None:
        """One usage row per line, under the batch's trace id and creating token."""
        now = utcnow().isoformat()
        rows = [
            {
                "kind": "record",
                "request_id": request_id(batch.id, start + offset),
                "user_id": batch.user_id,
                "token_id": batch.token_id,
                "endpoint": ENDPOINTS[batch.endpoint],
                "model": outcome.model or batch.model,
                "status": outcome.status,
                "tokens_in": outcome.tokens_in,
                "tokens_out": outcome.tokens_out,
                "latency_ms": round(line_ms, 3),
                "trace_id": batch.trace_id,
                "created_at": now,
            }
            for offset, outcome in enumerate(outcomes)
        ]
        write_lines(rows, note_use=False)
        db.session.commit()

    # -- the end -----------------------------------------------------------------
    def fail(self, batch: Batch, errors: list[dict[str, Any]]) -> str:
        batch.status, batch.failed_at, batch.errors = "failed", utcnow(), errors
        batch.lease_owner, batch.output_bytes = None, 0
        db.session.commit()
        log.info("batch failed validation", extra={"event.action": "batch-failed"})
        return "failed"

    def give_up(self) -> str:
        """End a batch that no attempt could finish: whatever it can keep, then a final status.

        Past its window it is expired, else failed with the reason. Finalizing is tried
        once more; if that fails too, the status is written alone.
        """
        batch = self.batch()
        expired = utcnow() >= batch.expires_at
        ending = "expired" if expired else "failed"
        limit = current_app.config["BATCH_MAX_ATTEMPTS"]
        errors = None
        if not expired:
            message = f"The batch could not be run to its end in {limit} attempts."
            errors = [{"code": "batch_attempts_exhausted", "message": message, "line": None}]
        try:
            return self.finalize(batch, ending, None, errors)
        except Exception as error:
            log_failure("batch not finalized", error)
            db.session.rollback()
        now = utcnow()
        db.session.execute(
            update(Batch)
            .where(Batch.id == self.batch_id, Batch.status.in_(ACTIVE_STATUSES))
            .values(
                status=ending,
                errors=errors,
                lease_owner=None,
                output_bytes=0,
                **{f"{ending}_at": now},
            )
        )
        db.session.commit()
        self.storage.delete(self.parts)
        log.warning("batch given up", extra={"event.action": f"batch-{ending}"})
        return ending

    def finalize(
        self,
        batch: Batch,
        ending: str,
        entries: list[Entry] | None,
        errors: list[dict[str, Any]] | None = None,
    ) -> str:
        """Join the parts into the output and error files; set the final status."""
        markers = self.markers()
        progress = Progress()
        for marker in markers:
            progress.add(marker)
        leftovers: list[bytes] = []
        if ending == "expired":
            entries = entries if entries is not None else self._entries_or_none(batch)
            for position in range(progress.position, len(entries or [])):
                assert entries is not None
                rid = request_id(batch.id, position)
                record = {
                    "id": f"batch_req_{rid}",
                    "custom_id": entries[position].custom_id,
                    "response": None,
                    "error": EXPIRED,
                }
                leftovers.append(_jsonl(record))
        now = utcnow()
        expires = now + timedelta(
            seconds=batch.output_expires_s or current_app.config["FILE_EXPIRY_DAYS"] * 86400
        )
        starts = [f"{self.parts}/{marker['start']:08d}" for marker in markers]
        for kind, attribute, extra in (
            ("out", "output_file_id", []),
            ("err", "error_file_id", leftovers),
        ):
            keys = [f"{name}.{kind}" for name in starts]
            if not extra and not any(self._size(key) for key in keys):
                continue
            row = files.store_output(
                user_id=batch.user_id,
                file_id=files.output_file_id(batch.id, kind),
                filename=f"{batch.id}_{'output' if kind == 'out' else 'error'}.jsonl",
                chunks=self._join(keys, extra),
                expires_at=expires,
            )
            setattr(batch, attribute, row.id)
        batch.completed = progress.completed
        batch.failed = progress.failed + len(leftovers)
        batch.input_tokens, batch.output_tokens = progress.tokens_in, progress.tokens_out
        batch.status = ending
        if errors:
            batch.errors = errors
        setattr(batch, f"{ending}_at", now)
        batch.lease_owner, batch.output_bytes = None, 0  # the files hold the bytes now
        db.session.commit()
        self.storage.delete(self.parts)
        log.info("batch ended", extra={"event.action": f"batch-{ending}"})
        return ending

    def _entries_or_none(self, batch: Batch) -> list[Entry] | None:
        try:
            return self.read_entries(batch)
        except InputProblems:
            return None

    def _size(self, key: str) -> int:
        if not self.storage.exists(key):
            return 0
        with self.storage.open(key) as file:
            return len(file.read(1))

    def _join(self, keys: list[str], extra: list[bytes]) -> Iterator[bytes]:
        for key in keys:
            if self.storage.exists(key):
                with self.storage.open(key) as file:
                    yield from read_chunks(file)
        yield from extra


def _jsonl(record: dict[str, Any]) -> bytes:
    text = json.dumps(record, separators=(",", ":"), ensure_ascii=False)
    try:
        return (text + "\n").encode()
    except UnicodeEncodeError:  # a lone surrogate got through: escape it rather than fail
        return (json.dumps(record, separators=(",", ":")) + "\n").encode()


def _owner_allowed(batch: Batch) -> bool:
    """The credential that made the batch could still make it: its user enabled, and the
    token live (neither revoked nor expired) or the login session not ended."""
    now = utcnow()
    user = db.session.execute(select(User.disabled_at).where(User.id == batch.user_id)).first()
    if user is None or user.disabled_at is not None:
        return False
    if batch.token_id is not None:
        token = db.session.execute(
            select(ApiToken.revoked_at, ApiToken.expires_at).where(ApiToken.id == batch.token_id)
        ).first()
        return token is not None and token.revoked_at is None and _live(token.expires_at, now)
    if batch.session_id is not None:
        session = db.session.execute(
            select(AuthSession.revoked_at, AuthSession.expires_at).where(
                AuthSession.id == batch.session_id
            )
        ).first()
        return session is not None and session.revoked_at is None and _live(session.expires_at, now)
    return True


def _live(expires_at: datetime | None, now: datetime) -> bool:
    return expires_at is None or expires_at > now


def log_failure(message: str, error: BaseException) -> None:
    """Log a failure by its type and where it happened: never its message, which may quote
    a line of the input or of the output."""
    frames = traceback.extract_tb(error.__traceback__)[-3:]
    where = " < ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(frames))
    log.error(message, extra={"error.type": type(error).__name__, "error.stack_trace": where})


def run_batch(batch_id: str, owner: str | None = None) -> str | None:
    """Run `batch_id` if no live worker has it; its final status, or None when not run."""
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
        enqueue_again(batch_id)
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


def enqueue_again(batch_id: str) -> None:
    from api.batches.service import enqueue

    enqueue(batch_id)


def run_safely(action: Any, **kwargs: Any) -> None:
    try:
        action(**kwargs)
    except Exception as error:  # the database is down too: the lease lapses by itself
        log.error("batch lease not released", extra={"error.type": type(error).__name__})


def lapsed(now: datetime) -> list[str]:
    """Ids of unfinished batches whose lease (or queue grace) has run out."""
    return list(
        db.session.scalars(
            select(Batch.id)
            .where(Batch.status.in_(ACTIVE_STATUSES), Batch.lease_expires_at < now)
            .limit(100)
        )
    )

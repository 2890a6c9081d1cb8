"""A batch's end: join its parts into the output and error files, set the final status.

The finalizer writes the files under ids derived from the batch, so it too can run
twice. A batch that no attempt could finish is given up: expired past its window,
else failed with the reason.
"""

from __future__ import annotations

import logging
import traceback
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy import update

from api.batches.lines import Entry, InputProblems
from api.batches.models import ACTIVE_STATUSES, Batch
from api.batches.parts import BatchParts, Progress, _jsonl, request_id
from api.db_types import utcnow
from api.extensions import db
from api.files import service as files

log = logging.getLogger("api.batches.runner")  # the batch's log lines keep one logger
EXPIRED = {
    "code": "batch_expired",
    "message": "This request could not be executed before the completion window expired.",
}


class BatchEnding(BatchParts):
    """How one worker's run of one batch ends."""

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


def log_failure(message: str, error: BaseException) -> None:
    """Log a failure by its type and where it happened: never its message, which may quote
    a line of the input or of the output."""
    frames = traceback.extract_tb(error.__traceback__)[-3:]
    where = " < ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(frames))
    log.error(message, extra={"error.type": type(error).__name__, "error.stack_trace": where})

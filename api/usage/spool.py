"""Usage rows off the request path: appended to a local file, moved into the database in bulk.

A call's usage row is one JSON line appended (a single `write` on an `O_APPEND`
descriptor) to this worker's spool file before its answer leaves, so a worker
killed right after answering has already handed the row to the kernel. A
flusher thread swaps the file for a fresh one every `USAGE_FLUSH_INTERVAL_MS`,
inserts its rows with one multi-row INSERT, and deletes it. Every row carries a
`request_id` and the INSERT skips ids already present, so a flush interrupted
between its commit and the delete is harmless when replayed.

Each spool file is held with an exclusive `flock` by the process that writes or
flushes it. A file whose lock can be taken belongs to a dead process: any
worker's flusher adopts it (a SIGKILLed worker's rows arrive within a flush or
two). So that a new file is never seen unlocked, it is created and locked under
an `.opening` name and only then renamed `.active` (adopting a live worker's
file in that instant lost its next rows: a HUP's new workers found it). While
PostgreSQL is down the files stay and are retried; nothing is lost.
What is not covered: the machine itself losing its page cache (no fsync per call).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
import time
import uuid
from collections import Counter
from datetime import date, datetime
from pathlib import Path
from typing import Any

from flask import Flask, current_app
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from api.extensions import db
from api.tokens.service import note_use as note_token_use
from api.usage.models import InferenceRecord, RejectedCalls

log = logging.getLogger(__name__)
OPENING, ACTIVE, FLUSHING = ".opening", ".active", ".flushing"
ABANDONED_OPENING_S = 60  # an `.opening` file is renamed within microseconds, or its process died


def _insert(table: Any):  # type: ignore[no-untyped-def]
    dialect = db.session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


class UsageSpool:
    """This process's spool file and the thread that empties it into the database."""

    def __init__(self, app: Flask, directory: str, interval_s: float) -> None:
        self.app = app
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.interval_s = interval_s
        self.pid = os.getpid()
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._fd = -1
        self._path: Path | None = None
        self._stop = threading.Event()
        self._open()
        self._thread = threading.Thread(target=self._run, name="usage-flusher", daemon=True)
        self._thread.start()

    def _open(self) -> None:
        """A new active file, locked before any other process can see it as one."""
        name = f"usage-{self.pid}-{uuid.uuid4().hex[:8]}"
        opening = self.directory / f"{name}{OPENING}"
        fd = os.open(opening, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        path = self.directory / f"{name}{ACTIVE}"
        os.rename(opening, path)
        self._fd, self._path = fd, path

    def append(self, line: dict[str, Any]) -> None:
        """Hand one row to the kernel (one write); raises OSError when it cannot."""
        data = (json.dumps(line, separators=(",", ":"), default=str) + "\n").encode()
        with self._lock:
            os.write(self._fd, data)

    def _rotate(self) -> Path | None:
        """Swap the active file for a new one; the old one (still locked) is ours to flush."""
        with self._lock:
            if os.fstat(self._fd).st_size == 0:
                return None
            old_fd, old_path = self._fd, self._path
            self._open()
        assert old_path is not None
        flushing = old_path.with_suffix(FLUSHING)
        os.rename(old_path, flushing)
        os.close(old_fd)  # releases the lock; the flush takes it again below
        return flushing

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.flush()
            except Exception:  # the thread must outlive any one flush; its files stay
                log.exception("usage spool flush failed")

    def flush(self) -> int:
        """Move every row waiting here (ours, and dead processes') into the database."""
        with self._flush_lock:
            self._rotate()
            moved = 0
            for path in sorted(self.directory.glob(f"*{FLUSHING}")) + self._orphans():
                moved += self._flush_file(path)
            return moved

    def _orphans(self) -> list[Path]:
        """Active files of processes that died: their lock can be taken.

        Empty `.opening` files a killed process left are removed on the way.
        """
        for path in self.directory.glob(f"*{OPENING}"):  # empty: nothing is written before
            with contextlib.suppress(OSError):
                if time.time() - path.stat().st_mtime > ABANDONED_OPENING_S:
                    path.unlink()
        found = []
        for path in self.directory.glob(f"*{ACTIVE}"):
            if path == self._path:
                continue
            with contextlib.suppress(OSError), open(path, "rb") as file:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                adopted = path.with_suffix(FLUSHING)
                os.rename(path, adopted)
                found.append(adopted)
        return found

    def _flush_file(self, path: Path) -> int:
        try:
            file = open(path, "rb")  # noqa: SIM115 - the lock lives as long as the file
        except FileNotFoundError:
            return 0
        with file:
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return 0  # another live process is flushing it
            lines = [json.loads(raw) for raw in file.read().splitlines() if raw.strip()]
            if lines and not self._store(lines):
                return 0  # the database is down: keep the file, try again
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        return len(lines)

    def _store(self, lines: list[dict[str, Any]]) -> bool:
        with self.app.app_context():
            try:
                write_lines(lines)
                db.session.commit()
                return True
            except SQLAlchemyError as error:
                db.session.rollback()
                log.warning(
                    "usage rows wait in the spool: database write failed",
                    extra={"error.type": type(error).__name__, "usage.rows": len(lines)},
                )
                return False
            finally:
                db.session.remove()

    def close(self) -> None:
        """Stop the thread and flush what is left (a worker's orderly exit)."""
        self._stop.set()
        self.flush()


def write_lines(lines: list[dict[str, Any]], *, note_use: bool = True) -> None:
    """Insert usage rows (skipping request ids already there) and 429 counts; no commit.

    With `note_use`, the tokens' `last_used_at` moves forward too.
    """
    records = [line for line in lines if line["kind"] == "record"]
    if records:
        table = InferenceRecord.__table__
        rows = [
            {
                "units": 0,  # lines spooled before issue 26 have none
                **{key: value for key, value in line.items() if key != "kind"},
                "created_at": datetime.fromisoformat(line["created_at"]),
            }
            for line in records
        ]
        statement = _insert(table).on_conflict_do_nothing(index_elements=[table.c.request_id])
        db.session.execute(statement, rows)
        if note_use:
            note_token_use(
                [(row["token_id"], row["created_at"]) for row in rows if row["token_id"]]
            )
    rejected = Counter(
        (line["user_id"], line["day"], line["endpoint"])
        for line in lines
        if line["kind"] == "rejected"
    )
    table = RejectedCalls.__table__
    for (user_id, day, endpoint), count in rejected.items():
        statement = _insert(table).values(
            user_id=user_id, day=date.fromisoformat(day), endpoint=endpoint, count=count
        )
        db.session.execute(
            statement.on_conflict_do_update(
                index_elements=[table.c.user_id, table.c.day, table.c.endpoint],
                set_={"count": table.c.count + count},
            )
        )


def usage_spool() -> UsageSpool | None:
    """This process's spool (made on first use, after any fork), or None when off."""
    directory = current_app.config.get("USAGE_SPOOL_DIR")
    if not directory:
        return None
    spool: UsageSpool | None = current_app.extensions.get("usage_spool")
    if spool is None or spool.pid != os.getpid():
        interval = current_app.config["USAGE_FLUSH_INTERVAL_MS"] / 1000
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        try:
            spool = UsageSpool(app, directory, interval)
        except OSError as error:  # unwritable: rows go straight to the database instead
            log.error("usage spool unavailable", extra={"error.type": type(error).__name__})
            return None
        current_app.extensions["usage_spool"] = spool
    return spool


def close_spool(app: Flask) -> None:
    """Flush and stop the spool of `app` in this process, if it has one (gunicorn worker exit)."""
    spool: UsageSpool | None = app.extensions.get("usage_spool")
    if spool is not None and spool.pid == os.getpid():
        spool.close()

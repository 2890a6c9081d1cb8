"""Files: store an upload, list, read, delete, and purge what has expired.

A user sees only their own files; any other id is a 404, whoever owns it. An
upload is streamed to storage while its size, lines and UTF-8 are checked; the
user's files, with the output running batches have written, stay under
`FILES_QUOTA_BYTES`, checked under a lock on the user's row (`lock_account`).
Output files of batches are written by `store_output` under an id derived from
the batch, so a finalizer that runs twice stores one file.
"""

from __future__ import annotations

import codecs
import hashlib
import logging
import secrets
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import BinaryIO

from flask import current_app
from sqlalchemy import func, select, update

from api.auth.models import User
from api.db_types import utcnow
from api.edge.errors import Conflict, NotFound, PayloadTooLarge, Unprocessable
from api.edge.paging import page_after
from api.extensions import db
from api.files.jsonl import LineCounter
from api.files.models import StoredFile
from api.files.storage import file_storage, read_chunks

log = logging.getLogger(__name__)
ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def new_file_id() -> str:
    return "file-" + "".join(secrets.choice(ALPHABET) for _ in range(24))


def lock_account(user_id: int) -> None:
    """Hold the user's row until the transaction ends, so their quota checks run one at a time.

    A write to the row takes its lock on PostgreSQL and the database's write lock on
    SQLite; a second request doing the same waits here, then reads what the first
    committed. Nothing about the row changes.
    """
    db.session.execute(update(User).where(User.id == user_id).values(id=User.id))


def used_bytes(user_id: int) -> int:
    """The user's stored files, plus output that running batches have written so far."""
    from api.batches.models import ACTIVE_STATUSES, Batch

    stored = db.session.scalar(
        select(func.coalesce(func.sum(StoredFile.bytes), 0)).where(StoredFile.user_id == user_id)
    )
    pending = db.session.scalar(
        select(func.coalesce(func.sum(Batch.output_bytes), 0)).where(
            Batch.user_id == user_id, Batch.status.in_(ACTIVE_STATUSES)
        )
    )
    return int(stored or 0) + int(pending or 0)


def quota_error(used: int, adding: int) -> PayloadTooLarge:
    """The 413 of a full storage quota."""
    quota = current_app.config["FILES_QUOTA_BYTES"]
    return PayloadTooLarge(
        f"Your files would take {used + adding} bytes; your storage quota is {quota}. "
        "Delete files you no longer need.",
        code="storage_quota_exceeded",
        details={"file": [f"Storage quota {quota} bytes, {used} in use."]},
    )


class _Counted:
    """Pass chunks through, counting their lines (`api.files.jsonl`) and checking UTF-8."""

    def __init__(self, source: BinaryIO, max_bytes: int) -> None:
        self.source = source
        self.max_bytes = max_bytes
        self.bytes = 0
        self.counter = LineCounter()
        self._decoder = codecs.getincrementaldecoder("utf-8")()

    @property
    def lines(self) -> int:
        return self.counter.lines

    def __iter__(self) -> Iterator[bytes]:
        for chunk in read_chunks(self.source):
            try:
                self._decoder.decode(chunk)
            except UnicodeDecodeError:
                raise Unprocessable(details={"file": ["The file is not UTF-8 text."]}) from None
            self.bytes += len(chunk)
            if self.bytes > self.max_bytes:
                raise PayloadTooLarge(
                    f"A file may hold at most {self.max_bytes} bytes.",
                    details={"file": [f"At most {self.max_bytes} bytes."]},
                )
            self.counter.feed(chunk)
            yield chunk
        try:
            self._decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise Unprocessable(details={"file": ["The file is not UTF-8 text."]}) from None
        self.counter.close()


def create_file(
    *, user_id: int, source: BinaryIO, filename: str, purpose: str, expires_in_s: int | None
) -> StoredFile:
    """Store an upload for `user_id`; 413 past the size cap or the storage quota."""
    quota = current_app.config["FILES_QUOTA_BYTES"]
    used = used_bytes(user_id)
    if used >= quota:
        raise quota_error(used, 0)
    row = StoredFile(
        id=new_file_id(),
        user_id=user_id,
        purpose=purpose,
        filename=(filename or "upload.jsonl")[-255:],
        created_at=utcnow(),
    )
    expiry = expires_in_s or current_app.config["FILE_EXPIRY_DAYS"] * 86400
    row.expires_at = row.created_at + timedelta(seconds=expiry)
    storage = file_storage()
    counted = _Counted(source, current_app.config["FILE_MAX_BYTES"])
    row.bytes = storage.put(row.storage_key, iter(counted))
    row.line_count = counted.lines
    if row.bytes == 0:
        storage.delete(row.storage_key)
        raise Unprocessable(details={"file": ["The file is empty."]})
    lock_account(user_id)  # until the commit: concurrent uploads are checked one after another
    used = used_bytes(user_id)
    if used + row.bytes > quota:
        db.session.rollback()
        storage.delete(row.storage_key)
        raise quota_error(used, row.bytes)
    db.session.add(row)
    db.session.commit()
    return row


def find_file(user_id: int, file_id: str) -> StoredFile:
    """The user's file `file_id`, or 404 (also when someone else owns it)."""
    row = db.session.get(StoredFile, file_id) if len(file_id) <= 40 else None
    if row is None or row.user_id != user_id:
        raise _not_found(file_id)
    return row


def _not_found(file_id: str) -> NotFound:
    return NotFound(f"No file {file_id!r}.", code="file_not_found", details={"file_id": file_id})


def list_files(
    user_id: int, *, purpose: str | None, after: str | None, order: str, limit: int
) -> tuple[list[StoredFile], bool]:
    query = select(StoredFile).where(StoredFile.user_id == user_id)
    if purpose is not None:
        query = query.where(StoredFile.purpose == purpose)
    mark = find_file(user_id, after) if after is not None else None
    return page_after(query, StoredFile, mark, order=order, limit=limit)


def open_file(user_id: int, file_id: str) -> tuple[StoredFile, BinaryIO]:
    """The user's file and its bytes, opened; 404 also when a delete took them meanwhile."""
    row = find_file(user_id, file_id)
    try:
        return row, file_storage().open(row.storage_key)
    except FileNotFoundError:
        # A concurrent delete (or the expiry purge) committed between our read and the open.
        raise _not_found(file_id) from None


def delete_file(user_id: int, file_id: str) -> None:
    """Delete the user's file; 409 while a batch still reads it."""
    from api.batches.models import ACTIVE_STATUSES, Batch

    row = find_file(user_id, file_id)
    busy = db.session.scalar(
        select(Batch.id)
        .where(Batch.input_file_id == row.id, Batch.status.in_(ACTIVE_STATUSES))
        .limit(1)
    )
    if busy is not None:
        raise Conflict(
            f"Batch {busy} is still reading this file; cancel it or wait.",
            code="file_in_use",
            details={"batch_id": busy},
        )
    db.session.delete(row)
    db.session.commit()
    file_storage().delete(row.storage_key)


def output_file_id(batch_id: str, kind: str) -> str:
    """The id of a batch's output (or error) file: the same every time it is written."""
    digest = hashlib.sha256(f"{batch_id}:{kind}".encode()).hexdigest()
    return "file-" + digest[:24]


def store_output(
    *,
    user_id: int,
    file_id: str,
    filename: str,
    chunks: Iterator[bytes],
    expires_at: datetime | None,
) -> StoredFile:
    """Write a batch's output file (replacing a half-finished earlier attempt); no commit."""
    row = db.session.get(StoredFile, file_id)
    if row is None:
        row = StoredFile(id=file_id, user_id=user_id, purpose="batch_output", created_at=utcnow())
        db.session.add(row)
    row.filename = filename
    row.expires_at = expires_at
    row.bytes = file_storage().put(row.storage_key, chunks)
    return row


def purge_expired_files(now: datetime | None = None) -> int:
    """Delete every file past its expiry (rows, then bytes), but inputs of unfinished batches."""
    from api.batches.models import ACTIVE_STATUSES, Batch

    now = now or utcnow()
    in_use = select(Batch.input_file_id).where(Batch.status.in_(ACTIVE_STATUSES))
    rows = list(
        db.session.scalars(
            select(StoredFile)
            .where(StoredFile.expires_at <= now, StoredFile.id.not_in(in_use))
            .limit(1000)
        )
    )
    for row in rows:
        db.session.delete(row)
    db.session.commit()
    storage = file_storage()
    for row in rows:
        storage.delete(row.storage_key)
    if rows:
        log.info("expired files deleted", extra={"event.action": "files-purge"})
    return len(rows)

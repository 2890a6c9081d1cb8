"""A batch's parts: each chunk's answers as part files, its usage rows, then its marker.

A chunk's part files are written atomically, its usage rows are metered with ids
derived from (batch, line), and only then is its marker written, so a chunk run twice
writes the same files and inserts no usage row twice; the markers say how far the
batch got (`Progress`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from flask import current_app

from api.batches.execute import Outcome
from api.batches.lease import BatchLease, Stopped
from api.batches.lines import ENDPOINTS, Entry, InputProblems, Line, parse_input
from api.batches.models import Batch
from api.db_types import utcnow
from api.extensions import db
from api.files import service as files
from api.files.models import StoredFile
from api.files.storage import read_chunks
from api.usage.spool import write_lines


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


class BatchParts(BatchLease):
    """The part files, usage rows and markers of one worker's run of one batch."""

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

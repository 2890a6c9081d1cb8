"""Where file bytes live: a small interface, and the local folder that implements it.

Keys are relative paths (`files/file-…`, `batches/batch_…/00000000.out`). Every
write lands under a temporary name and is renamed into place, so a reader (or a
worker resuming after a crash) sees a whole object or none. `LocalStorage` keeps
them under the instance folder (`FILES_DIR`); an S3-compatible store is a later
implementation of the same five methods, needed once batch workers run on hosts
that do not share this folder.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from flask import current_app

CHUNK_BYTES = 1024 * 1024


class Storage(Protocol):
    def put(self, key: str, chunks: Iterator[bytes]) -> int: ...

    def open(self, key: str) -> BinaryIO: ...

    def exists(self, key: str) -> bool: ...

    def keys(self, prefix: str) -> list[str]: ...

    def delete(self, key: str) -> None: ...


class LocalStorage:
    """Objects as files under `root` (created on first write)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()) or not key:
            raise ValueError(f"bad storage key {key!r}")
        return path

    def put(self, key: str, chunks: Iterator[bytes]) -> int:
        """Store `chunks` under `key` whole (write, fsync, rename); return the byte count."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial")
        size = 0
        try:
            with open(partial, "wb") as file:
                for chunk in chunks:
                    file.write(chunk)
                    size += len(chunk)
                file.flush()
                os.fsync(file.fileno())
            os.replace(partial, path)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return size

    def open(self, key: str) -> BinaryIO:
        return open(self._path(key), "rb")

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def keys(self, prefix: str) -> list[str]:
        """Keys of the objects directly under the folder `prefix`, sorted."""
        folder = self._path(prefix)
        if not folder.is_dir():
            return []
        return sorted(
            f"{prefix.rstrip('/')}/{entry.name}"
            for entry in folder.iterdir()
            if entry.is_file() and not entry.name.startswith(".")
        )

    def delete(self, key: str) -> None:
        """Remove an object, or a whole folder of them; a missing key is no error."""
        path = self._path(key)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def file_storage() -> LocalStorage:
    """The current app's storage."""
    return LocalStorage(current_app.config["FILES_DIR"])


def read_chunks(source: BinaryIO, size: int = CHUNK_BYTES) -> Iterator[bytes]:
    while chunk := source.read(size):
        yield chunk

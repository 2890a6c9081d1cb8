"""Giving a model process's freed heap back to the system, once the model is idle.

Decoded images and intermediate tensors are freed after each batch, but glibc keeps
the freed pages, so a handler process's RSS grew call after call (the OCR model's:
825-1,017 MB after three bench rounds, 1.2 GB after 240 calls). `malloc_trim(0)`
gives them back, but right after each batch it cost every call its time (about 10 ms
here) and the next batch the page faults of taking the memory again: +63 ms on a
0.51 s OCR call, 12 % (docs/benchmarks.md). So the trim runs in its own thread, once
no batch has run for `idle_s`, and at least every `every` batches under a load that
never pauses; never in the path of a call.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Callable
from typing import Any

_malloc_trim: Any = None


def release_memory() -> None:
    """glibc's `malloc_trim(0)`; elsewhere (musl, macOS) there is nothing to call."""
    global _malloc_trim
    if _malloc_trim is None:
        try:
            _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


class IdleTrim:
    """Call `trim` once the batches pause for `idle_s`, or after `every` batches."""

    def __init__(
        self, trim: Callable[[], None] = release_memory, *, idle_s: float = 1.0, every: int = 64
    ) -> None:
        self._trim = trim
        self._idle_s = idle_s
        self._every = every
        self._batches = 0
        self._due: float | None = None  # when to trim (monotonic); None: nothing to give back
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None

    def batch_done(self) -> None:
        """A batch ended: trim after the next pause (or now, every `every` batches)."""
        with self._condition:
            self._batches += 1
            now = time.monotonic()
            if self._batches >= self._every:
                self._batches = 0
                self._due = now
            else:
                self._due = now + self._idle_s
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="idle-trim", daemon=True)
                self._thread.start()
            self._condition.notify()

    def _run(self) -> None:
        while True:
            with self._condition:
                while self._due is None:
                    self._condition.wait()
                remaining = self._due - time.monotonic()
                if remaining > 0:
                    self._condition.wait(remaining)
                    continue
                self._due = None
            self._trim()

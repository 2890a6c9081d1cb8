"""Admission control for text generation: a few generations run at once, a bounded few wait.

Why not micro-batch generations like embeddings: a generation is a stream of many
model steps whose prompts, lengths, sampling settings and stop conditions differ,
and each client reads its tokens as they come. Batching them means padding and
re-forming the batch at every step, which the small models served here do not repay
on CPU. So each generation runs its own token loop, and this gate bounds how many
run together (a bounded semaphore of `slots`) and how many may wait for a slot;
beyond that a request is refused at once (`QueueFull`, 503 + Retry-After) rather
than left to hang, and a waiter whose deadline passes gets `DeadlineExceeded`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from api.runtime.errors import DeadlineExceeded, QueueFull


class DepthObserver(Protocol):
    def set_queue_depth(self, depth: int) -> None: ...


class GenerationGate:
    """At most `slots` holders at once and at most `max_waiting` callers waiting for one."""

    def __init__(
        self, *, slots: int, max_waiting: int, observer: DepthObserver | None = None
    ) -> None:
        if slots < 1 or max_waiting < 0:
            raise ValueError("slots must be 1 or more and max_waiting 0 or more")
        self.slots = slots
        self.max_waiting = max_waiting
        self._semaphore = threading.BoundedSemaphore(slots)
        self._lock = threading.Lock()
        self._waiting = 0
        self._observer = observer

    @property
    def waiting(self) -> int:
        return self._waiting

    def acquire(self, *, deadline: float) -> None:
        """Take a slot, waiting until `deadline` (monotonic) at most; `release()` gives it back."""
        if self._semaphore.acquire(blocking=False):
            return
        self._change_waiting(+1)
        try:
            if not self._semaphore.acquire(timeout=max(0.0, deadline - time.monotonic())):
                raise DeadlineExceeded("No generation slot came free in time.")
        finally:
            self._change_waiting(-1)

    def release(self) -> None:
        self._semaphore.release()

    @contextmanager
    def hold_slot(self, *, deadline: float) -> Iterator[None]:
        self.acquire(deadline=deadline)
        try:
            yield
        finally:
            self.release()

    def _change_waiting(self, delta: int) -> None:
        with self._lock:
            if delta > 0 and self._waiting >= self.max_waiting:
                raise QueueFull()
            self._waiting += delta
            depth = self._waiting
        if self._observer is not None:
            self._observer.set_queue_depth(depth)

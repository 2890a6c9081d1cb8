"""Dynamic micro-batching: concurrent requests to one model share a single model call.

A `MicroBatcher` owns a bounded queue and one daemon thread (started on the first
submit, never at import). The thread takes the oldest item, gathers more until it
has `max_batch` items or `max_wait_ms` have passed since that item arrived, runs the
batch function once and hands each caller its own result through a future. A full
queue refuses at once (`QueueFull`); each submit carries a deadline, past which the
caller stops waiting (`DeadlineExceeded`) and the item, if still queued, is dropped
without running. An exception from the batch function fails only that batch.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from api.observability.tracing import bind_trace_id, current_trace_id, reset_trace_id
from api.runtime.errors import DeadlineExceeded, QueueFull

log = logging.getLogger(__name__)

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")


class BatchObserver(Protocol):
    """Where batch statistics go (`metrics.ModelMetrics` sends them to Prometheus)."""

    def observe_batch(self, size: int, seconds: float) -> None: ...

    def observe_queue_wait(self, seconds: float) -> None: ...

    def set_queue_depth(self, depth: int) -> None: ...


@dataclass
class _Pending(Generic[ItemT, ResultT]):
    value: ItemT
    deadline: float
    trace_id: str | None
    enqueued: float = field(default_factory=time.monotonic)
    future: Future[ResultT] = field(default_factory=Future)


class MicroBatcher(Generic[ItemT, ResultT]):
    """Run `run_batch(items) -> results` (one result per item, in order) on gathered batches."""

    def __init__(
        self,
        run_batch: Callable[[list[ItemT]], Sequence[ResultT]],
        *,
        name: str,
        max_batch: int = 32,
        max_wait_ms: float = 5.0,
        max_queue: int = 256,
        observer: BatchObserver | None = None,
    ) -> None:
        if max_batch < 1 or max_queue < 1 or max_wait_ms < 0:
            raise ValueError("max_batch and max_queue must be 1 or more, max_wait_ms 0 or more")
        self.name = name
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000
        self.max_queue = max_queue
        self._run_batch = run_batch
        self._observer = observer
        self._queue: deque[_Pending[ItemT, ResultT]] = deque()
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._last_batch = 1

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    def submit(self, items: Sequence[ItemT], *, deadline: float) -> list[Future[ResultT]]:
        """Queue `items` together (all or none) and return one future per item.

        `deadline` is a `time.monotonic()` value. Raise `QueueFull` at once when the
        items do not fit in the queue, or when the batcher is closed.
        """
        trace_id = current_trace_id()
        pending = [_Pending[ItemT, ResultT](item, deadline, trace_id) for item in items]
        with self._condition:
            if self._closed:
                raise QueueFull(f"The {self.name} model is shutting down.")
            if len(self._queue) + len(pending) > self.max_queue:
                raise QueueFull()
            self._queue.extend(pending)
            depth = len(self._queue)
            self._start_thread()
            self._condition.notify()
        self._report_depth(depth)
        return [entry.future for entry in pending]

    def run(self, items: Sequence[ItemT], *, deadline: float) -> list[ResultT]:
        """Submit `items` and wait for all their results until `deadline` (monotonic)."""
        futures = self.submit(items, deadline=deadline)
        try:
            return [
                future.result(timeout=max(0.0, deadline - time.monotonic())) for future in futures
            ]
        except FutureTimeout:
            for future in futures:
                future.cancel()  # still queued: the worker will skip it
            raise DeadlineExceeded() from None

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread after its current batch; queued items fail with `QueueFull`."""
        with self._condition:
            self._closed = True
            abandoned = list(self._queue)
            self._queue.clear()
            self._condition.notify_all()
            thread = self._thread
        for entry in abandoned:
            if entry.future.set_running_or_notify_cancel():
                entry.future.set_exception(QueueFull(f"The {self.name} model is shutting down."))
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _start_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._work, name=f"batcher-{self.name}", daemon=True
            )
            self._thread.start()

    def _work(self) -> None:
        while True:
            batch = self._gather()
            if batch is None:
                return
            self._run(batch)

    def _gather(self) -> list[_Pending[ItemT, ResultT]] | None:
        """Wait for a first item, then for a full batch or the wait cap; None once closed.

        A lone caller after a lone batch is run at once: waiting only pays when
        others are arriving too, which the last batch's size tells.
        """
        with self._condition:
            while not self._queue and not self._closed:
                self._condition.wait()
            if self._closed:
                return None
            alone = self._last_batch <= 1 and len(self._queue) == 1
            closes_at = self._queue[0].enqueued + (0.0 if alone else self.max_wait)
            while len(self._queue) < self.max_batch and not self._closed:
                remaining = closes_at - time.monotonic()
                if remaining <= 0:
                    break
                self._condition.wait(remaining)
            count = min(self.max_batch, len(self._queue))
            batch = [self._queue.popleft() for _ in range(count)]
            depth = len(self._queue)
            self._last_batch = count
        self._report_depth(depth)
        return batch

    def _run(self, batch: list[_Pending[ItemT, ResultT]]) -> None:
        now = time.monotonic()
        live = []
        for entry in batch:
            if not entry.future.set_running_or_notify_cancel():
                continue  # its caller gave up already
            if entry.deadline <= now:
                entry.future.set_exception(DeadlineExceeded())
                continue
            live.append(entry)
            if self._observer is not None:
                self._observer.observe_queue_wait(now - entry.enqueued)
        if not live:
            return
        token = bind_trace_id(live[0].trace_id)
        try:
            results = self._run_batch([entry.value for entry in live])
            if len(results) != len(live):
                raise RuntimeError(f"batch of {len(live)} items gave {len(results)} results")
        except Exception as error:
            log.exception(
                "inference batch failed",
                extra={
                    "inference.model": self.name,
                    "inference.batch_size": len(live),
                    "inference.trace_ids": sorted({str(entry.trace_id) for entry in live}),
                },
            )
            for entry in live:
                entry.future.set_exception(error)
            return
        finally:
            reset_trace_id(token)
        seconds = time.monotonic() - now
        if self._observer is not None:
            self._observer.observe_batch(len(live), seconds)
        log.info(
            "inference batch",
            extra={
                "event.dataset": "modelgate.inference",
                "inference.model": self.name,
                "inference.batch_size": len(live),
                "event.duration": int(seconds * 1e9),
                "trace.id": live[0].trace_id,
                # Every caller's trace id, so "one trace" in Kibana finds the batch it rode in.
                "inference.trace_ids": sorted({str(entry.trace_id) for entry in live}),
            },
        )
        for entry, result in zip(live, results, strict=True):
            entry.future.set_result(result)

    def _report_depth(self, depth: int) -> None:
        if self._observer is not None:
            self._observer.set_queue_depth(depth)

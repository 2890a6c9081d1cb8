"""A loaded handler behind a `MicroBatcher`: decode, batch, predict, encode.

`HandlerRunner.predict(values, blobs, deadline)` decodes the item in the calling
thread (so a bad image is that caller's 422, not its batch's failure), queues it,
and the batcher's thread calls the handler's `predict` with up to `max_batch_size`
items gathered for at most `max_wait_ms`. A handler whose `predict` raises fails
that batch (`HandlerFailed`, a 500 with the trace id; the log line names the model
and the error type, never the inputs); one whose output breaks its declaration
fails only that item.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from api.edge.errors import APIError
from api.runtime.batcher import MicroBatcher
from api.runtime.errors import DeadlineExceeded
from api.runtime.handlers.declarations import Declaration
from api.runtime.handlers.decoding import (
    HandlerFault,
    decode_item,
    encode_outputs,
    encode_partial,
)
from api.runtime.handlers.memory import IdleTrim

log = logging.getLogger(__name__)
Encoded = tuple[dict[str, Any], int] | HandlerFault


class HandlerFailed(APIError):
    """The handler raised or broke its declaration: the model's fault, not the caller's."""

    status, code, message = 500, "model_error", "The model failed on this input."


class HandlerRunner:
    """One handler instance, set up, and the batcher that feeds it."""

    def __init__(
        self,
        handler: Any,
        declaration: Declaration,
        *,
        max_queue: int = 256,
        observer: Any = None,
        concurrency: int = 1,
    ) -> None:
        self.handler = handler
        self.declaration = declaration
        self._busy: dict[int, float] = {}  # thread -> when its batch or step began
        # A streaming handler's items: `concurrency` at a time (its `MODELS` setting).
        self._streams = threading.BoundedSemaphore(concurrency)
        self.memory = IdleTrim()  # freed heap back to the system when the model pauses
        self.batcher: MicroBatcher[dict[str, Any], Encoded] = MicroBatcher(
            self._run_batch,
            name=declaration.model_id,
            max_batch=declaration.max_batch_size,
            max_wait_ms=declaration.max_wait_ms,
            max_queue=max_queue,
            observer=observer,
        )

    @property
    def busy_since(self) -> float | None:
        """When the oldest running batch or streaming step began (the hang watch reads it)."""
        return min(self._busy.copy().values(), default=None)  # a copy: threads write it

    def _begin(self) -> None:
        self._busy[threading.get_ident()] = time.monotonic()

    def _end(self) -> None:
        self._busy.pop(threading.get_ident(), None)

    def _run_batch(self, items: list[dict[str, Any]]) -> list[Encoded]:
        self._begin()
        try:
            results = self.handler.predict(items)
        except Exception as error:
            raise self._failed(error, len(items)) from None
        finally:
            self._end()
            self.memory.batch_done()
        if not isinstance(results, list | tuple) or len(results) != len(items):
            log.error(
                "handler predict returned the wrong number of results",
                extra={
                    "inference.model": self.declaration.model_id,
                    "inference.batch_size": len(items),
                },
            )
            raise HandlerFailed()
        encoded: list[Encoded] = []
        for result in results:
            try:
                encoded.append(encode_outputs(self.declaration, result))
            except HandlerFault as fault:
                log.error(
                    "handler output broke its declaration",
                    extra={
                        "inference.model": self.declaration.model_id,
                        "error.message": str(fault),
                    },
                )
                encoded.append(fault)
        return encoded

    def _failed(self, error: Exception, batch_size: int) -> HandlerFailed:
        """Log a handler's exception: its type and where, never its message (it may quote
        the input)."""
        where = error.__traceback__
        while where is not None and where.tb_next is not None:
            where = where.tb_next
        log.error(
            "handler predict failed",
            extra={
                "inference.model": self.declaration.model_id,
                "inference.batch_size": batch_size,
                "error.type": type(error).__name__,
                "error.where": f"{where.tb_frame.f_code.co_filename}:{where.tb_lineno}"
                if where is not None
                else None,
            },
        )
        return HandlerFailed()

    def stream(
        self, values: dict[str, Any], blobs: dict[str, bytes], *, deadline: float
    ) -> Iterator[tuple[dict[str, Any], int]]:
        """A streaming handler's events for one item: (the outputs it gave, units so far).

        `concurrency` items at a time, waiting for a turn at most until `deadline`. Closing
        this iterator closes the handler's generator (the client went away). Any other
        handler's answer is one event.
        """
        if not self.declaration.streaming:
            yield self.predict(values, blobs, deadline=deadline)
            return
        item = decode_item(self.declaration, values, blobs)
        if not self._streams.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise DeadlineExceeded()
        generator = None
        try:
            generator = self.handler.predict([item])
            units = 1
            while True:
                self._begin()
                try:
                    result = next(generator)
                except StopIteration:
                    return
                except Exception as error:
                    raise self._failed(error, 1) from None
                finally:
                    self._end()
                try:
                    outputs, said = encode_partial(self.declaration, result)
                except HandlerFault as fault:
                    log.error(
                        "handler output broke its declaration",
                        extra={
                            "inference.model": self.declaration.model_id,
                            "error.message": str(fault),
                        },
                    )
                    raise HandlerFailed() from None
                units = units if said is None else said
                yield outputs, units
        finally:
            if generator is not None:
                generator.close()
            self._streams.release()
            self.memory.batch_done()

    def _predict_streaming(
        self, item: dict[str, Any], deadline: float
    ) -> tuple[dict[str, Any], int]:
        """A streaming handler called without a stream: its events merged into one answer."""
        if not self._streams.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise DeadlineExceeded()
        merged: dict[str, Any] = {}
        try:
            self._begin()
            for event in self.handler.predict([item]):
                if not isinstance(event, dict):
                    raise HandlerFault("a streaming predict must yield dicts")
                merged.update(event)  # later events replace earlier outputs (and `_units`)
                self._begin()
        except HandlerFault:
            raise HandlerFailed() from None
        except Exception as error:
            raise self._failed(error, 1) from None
        finally:
            self._end()
            self._streams.release()
            self.memory.batch_done()
        try:
            return encode_outputs(self.declaration, merged)
        except HandlerFault:
            raise HandlerFailed() from None

    def predict(
        self, values: dict[str, Any], blobs: dict[str, bytes], *, deadline: float
    ) -> tuple[dict[str, Any], int]:
        """One item's outputs and units; raises 422 (bad image), 500, 503 (queue full), 504."""
        item = decode_item(self.declaration, values, blobs)
        if time.monotonic() >= deadline:
            raise DeadlineExceeded()
        if self.declaration.streaming:
            return self._predict_streaming(item, deadline)
        (result,) = self.batcher.run([item], deadline=deadline)
        if isinstance(result, HandlerFault):
            raise HandlerFailed()
        return result

    def predict_items(
        self, items: list[dict[str, Any]], *, deadline: float
    ) -> list[tuple[dict[str, Any], int]]:
        """Several items' outputs and units, in order, queued together (no image inputs:
        `/v1/embeddings` sends its texts so); one failed item fails the call."""
        if self.declaration.streaming:
            raise HandlerFailed("A streaming model takes one item at a time.")
        decoded = [decode_item(self.declaration, values, {}) for values in items]
        if time.monotonic() >= deadline:
            raise DeadlineExceeded()
        results = self.batcher.run(decoded, deadline=deadline)
        if any(isinstance(result, HandlerFault) for result in results):
            raise HandlerFailed()
        return results  # type: ignore[return-value]

    def close(self) -> None:
        self.batcher.close()

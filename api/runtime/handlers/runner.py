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
import time
from typing import Any

from api.edge.errors import APIError
from api.runtime.batcher import MicroBatcher
from api.runtime.handlers.declarations import Declaration
from api.runtime.handlers.decoding import HandlerFault, decode_item, encode_outputs

log = logging.getLogger(__name__)
Encoded = tuple[dict[str, Any], int] | HandlerFault


class HandlerFailed(APIError):
    """The handler raised or broke its declaration: the model's fault, not the caller's."""

    status, code, message = 500, "model_error", "The model failed on this input."


class HandlerRunner:
    """One handler instance, set up, and the batcher that feeds it."""

    def __init__(
        self, handler: Any, declaration: Declaration, *, max_queue: int = 256, observer: Any = None
    ) -> None:
        self.handler = handler
        self.declaration = declaration
        self.busy_since: float | None = None  # when the running batch began (hang watch)
        self.batcher: MicroBatcher[dict[str, Any], Encoded] = MicroBatcher(
            self._run_batch,
            name=declaration.model_id,
            max_batch=declaration.max_batch_size,
            max_wait_ms=declaration.max_wait_ms,
            max_queue=max_queue,
            observer=observer,
        )

    def _run_batch(self, items: list[dict[str, Any]]) -> list[Encoded]:
        self.busy_since = time.monotonic()
        try:
            results = self.handler.predict(items)
        except Exception as error:
            # The type and where, never the message: an exception's text may quote the input.
            where = error.__traceback__
            while where is not None and where.tb_next is not None:
                where = where.tb_next
            log.error(
                "handler predict failed",
                extra={
                    "inference.model": self.declaration.model_id,
                    "inference.batch_size": len(items),
                    "error.type": type(error).__name__,
                    "error.where": f"{where.tb_frame.f_code.co_filename}:{where.tb_lineno}"
                    if where is not None
                    else None,
                },
            )
            raise HandlerFailed() from None
        finally:
            self.busy_since = None
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

    def predict(
        self, values: dict[str, Any], blobs: dict[str, bytes], *, deadline: float
    ) -> tuple[dict[str, Any], int]:
        """One item's outputs and units; raises 422 (bad image), 500, 503 (queue full), 504."""
        item = decode_item(self.declaration, values, blobs)
        if time.monotonic() >= deadline:
            from api.runtime.errors import DeadlineExceeded

            raise DeadlineExceeded()
        (result,) = self.batcher.run([item], deadline=deadline)
        if isinstance(result, HandlerFault):
            raise HandlerFailed()
        return result

    def close(self) -> None:
        self.batcher.close()

"""The worker's side of a handler model: requests to its process over its Unix socket.

Each worker thread keeps one connection per model. A process that does not answer
(it crashed, it is being restarted) is a 503 with `Retry-After`; a call whose
answer misses its deadline a 504; an error the process answers (a 422 for an image
that does not decode, a 500 when the handler raised) comes back as the same
`APIError`, so the route answers it in the one error shape with this call's trace id.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from typing import Any

from api.edge.errors import APIError, ServiceUnavailable
from api.observability.tracing import current_trace_id
from api.runtime import wire
from api.runtime.errors import RETRY_AFTER_S, DeadlineExceeded

RESTARTING = "The model is restarting; retry shortly."


def socket_path(directory: str, model_id: str) -> str:
    return os.path.join(directory, f"{model_id}.sock")


class ModelRestarting(ServiceUnavailable):
    code = "model_restarting"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or RESTARTING, headers={"Retry-After": str(RETRY_AFTER_S)})


class HandlerClient(wire.ThreadConnections):
    """Calls to one handler model's process at `path`, one connection per calling thread."""

    def __init__(self, model_id: str, path: str) -> None:
        super().__init__(path)
        self.model_id = model_id

    def info(self, timeout: float = 2.0) -> dict[str, Any]:
        return self._request({"op": "info"}, b"", timeout)

    def predict(
        self, values: dict[str, Any], blobs: dict[str, bytes], timeout: float
    ) -> tuple[dict[str, Any], int]:
        reply = self._request(*_predict(values, blobs, timeout, stream=False), timeout + 1.0)
        return reply["outputs"], int(reply["units"])

    def predict_items(
        self, items: list[dict[str, Any]], timeout: float
    ) -> list[tuple[dict[str, Any], int]]:
        """Several items (JSON values only) in one frame, batched together by the model."""
        header = {
            "op": "predict",
            "items": items,
            "timeout": timeout,
            "trace_id": current_trace_id(),
        }
        reply = self._request(header, b"", timeout + 1.0)
        return [(answer["outputs"], int(answer["units"])) for answer in reply["items"]]

    def stream(
        self, values: dict[str, Any], blobs: dict[str, bytes], timeout: float
    ) -> Iterator[dict[str, Any]]:
        """A streaming model's frames, `{"outputs", "units"}` each (the units so far).

        The first frame is read before this returns, so an error before any output
        (a 422, a 503) is raised here, with its status; a later one is raised while
        iterating. Closing the iterator early drops the connection, which ends the
        handler's generator in the model's process.
        """
        first = self._request(*_predict(values, blobs, timeout, stream=True), timeout + 1.0)
        sock = self.take()
        assert sock is not None
        return self._rest(sock, first, timeout + 1.0)

    def _rest(
        self, sock: socket.socket, frame: dict[str, Any], timeout: float
    ) -> Iterator[dict[str, Any]]:
        finished = False
        try:
            while not frame.get("done"):
                yield frame
                try:
                    frame, _ = wire.receive(sock, time.monotonic() + timeout)
                except TimeoutError:
                    raise DeadlineExceeded() from None
                except (ConnectionError, OSError):
                    raise ModelRestarting() from None
                if not frame.get("ok"):
                    raise _failure(frame)
            finished = True
            yield frame  # the last: `units` for the whole call, no outputs
        finally:
            if finished:
                self.give_back(sock)
            else:  # frames may still be coming: this connection cannot be reused
                sock.close()

    def _request(self, header: dict[str, Any], payload: bytes, timeout: float) -> dict[str, Any]:
        """Send, receive; a kept connection found broken is retried once on a new one."""
        for attempt in (1, 2):
            reused = self.has_connection()
            try:
                sock = self.connection()
                sock.settimeout(max(0.001, timeout))
                wire.send(sock, header, payload)
                reply, _ = wire.receive(sock)
            except TimeoutError:
                self.drop()
                raise DeadlineExceeded() from None
            except (ConnectionError, OSError):
                self.drop()
                if attempt == 2 or not reused:  # never resend what a fresh process failed on
                    raise ModelRestarting() from None
                continue
            if not reply.get("ok"):
                raise _failure(reply)
            return reply
        raise AssertionError("unreachable")


def _predict(
    values: dict[str, Any], blobs: dict[str, bytes], timeout: float, *, stream: bool
) -> tuple[dict[str, Any], bytes]:
    header = {
        "op": "predict",
        "values": values,
        "blobs": [[name, len(data)] for name, data in blobs.items()],
        "timeout": timeout,
        "trace_id": current_trace_id(),
        "stream": stream,
    }
    return header, b"".join(blobs.values())


def _failure(reply: dict[str, Any]) -> APIError:
    """The error the model's process answered, as the same APIError."""
    return APIError(
        reply.get("message"),
        code=reply.get("code"),
        status=int(reply.get("status") or 500),
        details=reply.get("details") or {},
        headers=reply.get("headers") or {},
    )

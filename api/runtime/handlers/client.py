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
import threading
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


class HandlerClient:
    """Calls to one handler model's process at `path`, one connection per calling thread."""

    def __init__(self, model_id: str, path: str) -> None:
        self.model_id = model_id
        self.path = path
        self._local = threading.local()

    def info(self, timeout: float = 2.0) -> dict[str, Any]:
        reply = self._request({"op": "info"}, b"", timeout)
        return reply

    def predict(
        self, values: dict[str, Any], blobs: dict[str, bytes], timeout: float
    ) -> tuple[dict[str, Any], int]:
        header = {
            "op": "predict",
            "values": values,
            "blobs": [[name, len(data)] for name, data in blobs.items()],
            "timeout": timeout,
            "trace_id": current_trace_id(),
        }
        reply = self._request(header, b"".join(blobs.values()), timeout + 1.0)
        return reply["outputs"], int(reply["units"])

    def _request(self, header: dict[str, Any], payload: bytes, timeout: float) -> dict[str, Any]:
        """Send, receive; a kept connection found broken is retried once on a new one."""
        for attempt in (1, 2):
            reused = getattr(self._local, "sock", None) is not None
            try:
                sock = self._connection()
                sock.settimeout(max(0.001, timeout))
                wire.send(sock, header, payload)
                reply, _ = wire.receive(sock)
            except TimeoutError:
                self._drop()
                raise DeadlineExceeded() from None
            except (ConnectionError, OSError):
                self._drop()
                if attempt == 2 or not reused:  # never resend what a fresh process failed on
                    raise ModelRestarting() from None
                continue
            if not reply.get("ok"):
                raise APIError(
                    reply.get("message"),
                    code=reply.get("code"),
                    status=int(reply.get("status") or 500),
                    details=reply.get("details") or {},
                    headers=reply.get("headers") or {},
                )
            return reply
        raise AssertionError("unreachable")

    def _connection(self) -> socket.socket:
        sock = getattr(self._local, "sock", None)
        if sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(self.path)
            except OSError:
                sock.close()
                raise
            self._local.sock = sock
        return sock

    def _drop(self) -> None:
        sock = getattr(self._local, "sock", None)
        self._local.sock = None
        if sock is not None:
            sock.close()

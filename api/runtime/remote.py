"""The worker's side of the model server: embedding models that run in another process.

`RemoteEmbeddingModel` and `RemoteBatcher` stand where `EmbeddingModel` and its
`MicroBatcher` stand when `MODEL_SERVER_SOCKET` is set: the worker keeps only the
tokenizer (to count tokens and refuse over-long inputs before anything is sent)
and sends the texts to the model server (`model_server`), which batches them with
the other workers' texts. Each worker thread keeps one connection of its own. A
server that does not answer is a 503 with `Retry-After` (`QueueFull`), a missed
deadline a 504, as in-process.
"""

from __future__ import annotations

import os
import time
from array import array
from collections.abc import Sequence
from typing import Any

from tokenizers import Tokenizer

from api.edge.errors import APIError
from api.observability.tracing import current_trace_id
from api.runtime import wire
from api.runtime.errors import DeadlineExceeded, ModelNotFound, ModelUnavailable, QueueFull
from api.runtime.specs import ModelInfo, ModelSpec

NOT_ANSWERING = "The model server is not answering; retry shortly."


class ModelServerClient(wire.ThreadConnections):
    """Requests to the model server on `path`, one connection per calling thread."""

    def request(self, header: dict[str, Any], timeout: float) -> tuple[dict[str, Any], bytes]:
        """Send `header`, return the answer; a broken connection is retried once on a new one."""
        for attempt in (1, 2):
            try:
                sock = self.connection()
                sock.settimeout(max(0.001, timeout))
                wire.send(sock, header)
                reply, payload = wire.receive(sock)
            except TimeoutError:
                self.drop()
                raise DeadlineExceeded() from None
            except (ConnectionError, OSError):
                self.drop()
                if attempt == 2:
                    raise QueueFull(NOT_ANSWERING) from None
                continue
            if not reply.get("ok"):
                raise _error(reply)
            return reply, payload
        raise AssertionError("unreachable")

    def wait_info(self, model_id: str, wait_s: float) -> dict[str, Any]:
        """The server's description of `model_id`, waiting up to `wait_s` for it to start."""
        give_up = time.monotonic() + wait_s
        while True:
            try:
                reply, _ = self.request({"op": "info"}, timeout=5.0)
                break
            except QueueFull:
                if time.monotonic() >= give_up:
                    raise ModelUnavailable(model_id) from None
                time.sleep(0.2)
        info = reply["models"].get(model_id)
        if info is None:
            raise ModelUnavailable(model_id)
        return info


_ERRORS: dict[str, type[APIError]] = {
    "QueueFull": QueueFull,
    "DeadlineExceeded": DeadlineExceeded,
}


def _error(reply: dict[str, Any]) -> APIError:
    kind = reply.get("error")
    if kind in _ERRORS:
        return _ERRORS[kind](reply.get("message"))
    if kind == "ModelNotFound":
        return ModelNotFound(None, "embedding")
    return QueueFull(NOT_ANSWERING) if kind == "ModelUnavailable" else APIError()


class RemoteEmbeddingModel:
    """What the worker knows of an embedding model served by the model server."""

    task = "embedding"

    def __init__(self, spec: ModelSpec, client: ModelServerClient, wait_s: float) -> None:
        tokenizer_file = os.path.join(spec.path, "tokenizer.json")
        if not os.path.exists(tokenizer_file):
            raise ModelUnavailable(spec.id)
        described = client.wait_info(spec.id, wait_s)
        self.id = spec.id
        self.max_input = int(described["max_input"])
        self.dimensions = int(described["dimensions"])
        self._info = ModelInfo(
            spec.id,
            "embedding",
            int(described["parameters"]),
            self.max_input,
            str(described["device"]),
            int(described["created"]),
        )
        self._counter = Tokenizer.from_file(tokenizer_file)
        self._counter.no_truncation()
        self._counter.no_padding()

    @property
    def info(self) -> ModelInfo:
        return self._info

    def count_tokens(self, text: str) -> int:
        """Tokens `text` takes in the model's window, special tokens included (thread-safe)."""
        return len(self._counter.encode(text, add_special_tokens=True).ids)


class RemoteBatcher:
    """Stands for the model's `MicroBatcher`: `run` sends the texts to the model server."""

    def __init__(self, model: RemoteEmbeddingModel, client: ModelServerClient, max_queue: int):
        self.name = model.id
        self.max_queue = max_queue
        self._model = model
        self._client = client

    def run(self, items: Sequence[str], *, deadline: float) -> list[tuple[list[float], int]]:
        timeout = deadline - time.monotonic()
        if timeout <= 0:
            raise DeadlineExceeded()
        header = {
            "op": "embed",
            "model": self.name,
            "texts": list(items),
            "timeout": timeout,
            "trace_id": current_trace_id(),
        }
        reply, payload = self._client.request(header, timeout=timeout)
        floats = array("f", payload)
        width = self._model.dimensions
        counts = reply["counts"]
        return [
            (floats[index * width : (index + 1) * width].tolist(), counts[index])
            for index in range(len(counts))
        ]

    def close(self) -> None:
        """Nothing to stop here: the model server owns the queue."""

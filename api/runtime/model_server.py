"""One model process per host: the embedding models, fed by every gunicorn worker.

Run in a worker, a model shares its process's GIL with the HTTP threads: while it
runs they cannot hand it more work, so batches stay small, and the forward pass
slows while they contend. Here the models live in a process of their own with all
the host's cores; every worker sends its texts over a Unix socket (`wire`), and one
`MicroBatcher` per model gathers the texts of all workers into one batch.

`python -m api.runtime.model_server --socket PATH` serves until SIGTERM;
`--supervise` runs that server as a child and starts it again when it dies (the
gunicorn master starts the supervisor, see gunicorn.conf.py). Both end with their
parent. Settings come from the environment as for the app (`MODELS`,
`BATCH_MAX_SIZE`, `BATCH_MAX_WAIT_MS`, `INFERENCE_QUEUE_SIZE`, and the connection
bounds `MODEL_SERVER_MAX_CONNECTIONS`, `MODEL_SERVER_FRAME_TIMEOUT_S`,
`MODEL_SERVER_IDLE_TIMEOUT_S`); text generation stays in the workers (see
docs/decisions.md).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import socketserver
import threading
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from api.config import Config
from api.edge.errors import APIError
from api.observability.tracing import bind_trace_id, reset_trace_id
from api.runtime import wire
from api.runtime.batcher import MicroBatcher
from api.runtime.errors import ModelNotFound
from api.runtime.metrics import ModelMetrics
from api.runtime.supervisor import end_with_parent, supervise

if TYPE_CHECKING:
    from api.runtime.models.embedding import EmbeddingModel
    from api.runtime.settings import InferenceSettings
    from api.runtime.specs import ModelSpec

log = logging.getLogger("api.runtime.model_server")  # not "__main__" when run

Row = tuple[bytes, int]  # one text's float32 vector bytes and its token count
REFUSAL_LOG_INTERVAL_S = 60.0  # at most one line a minute while connections are refused


@dataclass(frozen=True)
class _Served:
    model: EmbeddingModel
    batcher: MicroBatcher[str, Row]
    dimensions: int


def _serve_model(spec: ModelSpec, settings: InferenceSettings) -> _Served:
    from api.runtime.registry import load_model

    model: EmbeddingModel = load_model(spec)  # type: ignore[assignment]
    predict = model.predict  # the built-in handler's call (docs/models.md)

    def run_batch(texts: list[str]) -> list[Row]:
        results = predict([{"text": text} for text in texts])
        return [(result["embedding"].numpy().tobytes(), result["_units"]) for result in results]

    batcher = settings.batcher(spec.id, run_batch, ModelMetrics(spec.id))
    return _Served(model, batcher, model.dimensions)


class _Connection(socketserver.BaseRequestHandler):
    """One worker thread's connection: a request, its answer, again until it closes or stalls."""

    server: ModelServer

    def handle(self) -> None:
        sock: socket.socket = self.request
        while self._frame_begins(sock):
            try:
                header, _ = wire.receive(sock, time.monotonic() + self.server.frame_timeout)
            except TimeoutError:
                log.warning("model server closed a connection: a frame took too long")
                return
            except (ConnectionError, OSError, ValueError):
                return
            reply, payload = self.server.answer(header)
            try:
                sock.settimeout(self.server.frame_timeout)  # a peer that stops reading
                wire.send(sock, reply, payload)
            except OSError:
                return

    def _frame_begins(self, sock: socket.socket) -> bool:
        """Wait for the next frame's first byte; False if the peer left or stayed idle too long."""
        sock.settimeout(self.server.idle_timeout)
        try:
            return sock.recv(1, socket.MSG_PEEK) != b""
        except OSError:  # a timeout too: the worker opens a new connection when it needs one
            return False


class ModelServer(socketserver.ThreadingUnixStreamServer):
    """Answers `info` and `embed` requests for the models in `served`.

    Each connection has a thread, and at most `max_connections` are open: one more is
    closed as it is accepted, before any thread starts. A connection waits at most
    `idle_timeout` seconds for a frame to begin and `frame_timeout` for it to end.
    """

    daemon_threads = True

    def __init__(
        self,
        path: str,
        served: dict[str, _Served],
        *,
        max_connections: int,
        frame_timeout: float,
        idle_timeout: float,
    ) -> None:
        self.served = served
        self.max_connections = max_connections
        self.frame_timeout = frame_timeout
        self.idle_timeout = idle_timeout
        self._slots = threading.BoundedSemaphore(max_connections)
        self._refusal_logged_at = -REFUSAL_LOG_INTERVAL_S
        super().__init__(path, _Connection)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Start the connection's thread, or close the connection when every slot is taken."""
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            self._log_refusal()
            return
        try:
            super().process_request(request, client_address)
        except BaseException:  # no thread started: nothing else gives the slot back
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def _log_refusal(self) -> None:
        now = time.monotonic()  # only the accepting thread gets here
        if now - self._refusal_logged_at >= REFUSAL_LOG_INTERVAL_S:
            self._refusal_logged_at = now
            log.warning(
                "model server at its %d connections: closing new ones", self.max_connections
            )

    def answer(self, header: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        operation = header.get("op")
        try:
            if operation == "info":
                return {"ok": True, "models": self._infos()}, b""
            if operation == "embed":
                return self._embed(header)
            return {"ok": False, "error": "BadRequest", "message": f"unknown op {operation!r}"}, b""
        except APIError as error:
            return {"ok": False, "error": type(error).__name__, "message": error.message}, b""
        except Exception:
            log.exception("model server request failed")
            return {"ok": False, "error": "Failed", "message": "The model failed."}, b""

    def _infos(self) -> dict[str, dict[str, Any]]:
        return {
            model_id: {**asdict(entry.model.info), "dimensions": entry.dimensions}
            for model_id, entry in self.served.items()
        }

    def _embed(self, header: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        entry = self.served.get(header.get("model", ""))
        if entry is None:
            raise ModelNotFound(header.get("model"), "embedding")
        texts = header["texts"]
        if not isinstance(texts, list) or not all(isinstance(text, str) for text in texts):
            raise ValueError("texts must be a list of strings")
        token = bind_trace_id(header.get("trace_id"))
        try:
            rows = entry.batcher.run(texts, deadline=time.monotonic() + float(header["timeout"]))
        finally:
            reset_trace_id(token)
        reply = {"ok": True, "counts": [count for _, count in rows], "dimensions": entry.dimensions}
        return reply, b"".join(vector for vector, _ in rows)


def _stop_on_sigterm() -> None:
    def stop(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the supervisor's and the parent's
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)


def serve(path: str) -> int:
    """Load the embedding models, then answer on `path` until SIGTERM."""
    end_with_parent()
    _stop_on_sigterm()
    config = Config()  # first: the connection cap counts the gunicorn workers' threads
    os.environ["GUNICORN_WORKERS"] = "1"  # torch takes every core: no worker runs a model
    # OpenMP threads that spin after each batch take the cores the HTTP workers need
    # (single-call latency 1.7x the raw model's with spinning, 1.05x without). Read
    # when torch loads its OpenMP runtime, which is after this line.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from api import create_app
    from api.runtime.settings import InferenceSettings
    from api.runtime.specs import parse_model_specs

    app = create_app(config)
    settings = InferenceSettings.from_config(app.config)
    served = {}
    for spec in parse_model_specs(app.config["MODELS"]):
        if spec.task != "embedding" or spec.upstream:  # upstreams are served elsewhere
            continue
        try:
            served[spec.id] = _serve_model(spec, settings)
        except Exception:  # its requests answer 503 from the workers
            log.exception("model failed to load", extra={"inference.model": spec.id})
    if os.path.exists(path):
        os.unlink(path)
    server = ModelServer(
        path,
        served,
        max_connections=config.MODEL_SERVER_MAX_CONNECTIONS,
        frame_timeout=config.MODEL_SERVER_FRAME_TIMEOUT_S,
        idle_timeout=config.MODEL_SERVER_IDLE_TIMEOUT_S,
    )
    log.info("model server ready", extra={"inference.models": sorted(served), "socket": path})
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        for entry in served.values():
            entry.batcher.close()
        if os.path.exists(path):
            os.unlink(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="modelgate's model server")
    parser.add_argument("--socket", required=True, help="the Unix socket to listen on")
    parser.add_argument("--supervise", action="store_true", help="run it and restart it")
    args = parser.parse_args(argv)
    return supervise(args.socket) if args.supervise else serve(args.socket)


if __name__ == "__main__":
    from api.process.ending import exit_now

    exit_now(main())  # skips torch's ~3 s teardown (api/process/ending.py)

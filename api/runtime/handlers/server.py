"""One handler model in a process of its own, answering the gunicorn workers on a Unix socket.

`python -m api.runtime.handlers.server --model ID --socket PATH` loads the handler that
`MODELS` names for ID, listens at once (answering `info` with state `loading`),
calls `setup(device)`, then answers `predict` frames (`api.runtime.wire`: a JSON
header and the images' bytes as the payload). A `setup` that raises leaves the
process up in state `failed`, so `/readyz` can say why while the other models
serve, instead of a restart loop. A batch that runs past `hang_s` (three deadlines)
ends the process: its supervisor (`supervisor`) starts a fresh one, and callers get
503 with `Retry-After` meanwhile. One process per model: a crash, a leak or a hang in
one handler never reaches another (docs/decisions.md, issue 26).
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import socketserver
import threading
import time
from collections.abc import Generator, Iterator
from typing import Any

from api.edge.errors import APIError
from api.observability.tracing import bind_trace_id, reset_trace_id
from api.runtime import wire
from api.runtime.errors import ModelUnavailable

log = logging.getLogger("api.runtime.handlers.server")


class HandlerProcess:
    """The model's state (loading, ready, failed) and, once ready, its runner."""

    def __init__(self, model_id: str) -> None:
        self.model_id = model_id
        self.state = "loading"
        self.error: str | None = None
        self.device = "cpu"
        self.created = int(time.time())
        self.declaration: Any = None
        self.runner: Any = None
        self.timeout_s = 30.0

    def load(self, models: str, default_timeout_s: float) -> None:
        from api.runtime.handlers.declarations import declare
        from api.runtime.handlers.loader import choose_device, load_class
        from api.runtime.handlers.runner import HandlerRunner
        from api.runtime.handlers.specs import check_concurrency, handler_entries
        from api.runtime.metrics import ModelMetrics

        try:
            settings = handler_entries(models)[self.model_id]
            handler_class = load_class(self.model_id, settings.target)
            self.declaration = declare(handler_class, self.model_id, settings.overrides)
            check_concurrency(self.model_id, settings, self.declaration.streaming)
            self.timeout_s = float(settings.timeout_s or default_timeout_s)
            self.device = choose_device(self.declaration.device)
            handler = handler_class()
            if settings.path is not None:  # the built-in kinds' weights (docs/models.md)
                handler.path = settings.path
            handler.setup(self.device)
            self.runner = HandlerRunner(
                handler,
                self.declaration,
                max_queue=settings.max_queue,
                observer=ModelMetrics(self.model_id),  # /metrics: batch sizes, waits, depth
                concurrency=settings.concurrency,
            )
        except Exception as error:
            self.state, self.error = "failed", f"{type(error).__name__}: {error}"[:500]
            log.exception("handler setup failed", extra={"inference.model": self.model_id})
            return
        self.state = "ready"
        log.info("handler ready", extra={"inference.model": self.model_id, "device": self.device})

    def info(self) -> dict[str, Any]:
        return {
            "model": self.model_id,
            "state": self.state,
            "error": self.error,
            "device": self.device,
            "created": self.created,
            "timeout_s": self.timeout_s,
            "declaration": self.declaration.describe() if self.declaration else None,
        }

    def predict(self, header: dict[str, Any], payload: bytes) -> Frames:
        """One item's answer, or with `stream` (a streaming handler) its frames."""
        if self.runner is None:
            raise ModelUnavailable(self.model_id)
        blobs, offset = {}, 0
        for name, length in header.get("blobs", []):
            blobs[str(name)] = payload[offset : offset + int(length)]
            offset += int(length)
        timeout = min(float(header["timeout"]), self.timeout_s)
        deadline = time.monotonic() + timeout
        if "items" in header:  # several items of one call (/v1/embeddings), batched together
            return self._predict_items(header, deadline)
        values = header.get("values") or {}
        if not isinstance(values, dict):
            raise ValueError("values must be an object")
        if header.get("stream"):
            events = self.runner.stream(values, blobs, deadline=deadline)
            return _traced(header.get("trace_id"), _stream_frames(events))
        token = bind_trace_id(header.get("trace_id"))
        try:
            outputs, units = self.runner.predict(values, blobs, deadline=deadline)
        finally:
            reset_trace_id(token)
        return {"ok": True, "outputs": outputs, "units": units}

    def _predict_items(self, header: dict[str, Any], deadline: float) -> dict[str, Any]:
        items = header["items"]
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise ValueError("items must be a list of objects")
        token = bind_trace_id(header.get("trace_id"))
        try:
            answers = self.runner.predict_items(items, deadline=deadline)
        finally:
            reset_trace_id(token)
        return {"ok": True, "items": [{"outputs": out, "units": units} for out, units in answers]}


Frames = dict[str, Any] | Iterator[dict[str, Any]]


def _stream_frames(events: Iterator[tuple[dict[str, Any], int]]) -> Iterator[dict[str, Any]]:
    units = 1
    for outputs, units in events:
        yield {"ok": True, "outputs": outputs, "units": units}
    yield {"ok": True, "done": True, "units": units}


def _traced(trace_id: str | None, frames: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """`frames`, each made under the request's trace id (for the handler's log lines)."""
    try:
        while True:
            token = bind_trace_id(trace_id)
            try:
                frame = next(frames)
            except StopIteration:
                return
            finally:
                reset_trace_id(token)
            yield frame
    finally:
        frames.close()  # type: ignore[attr-defined]


def error_frame(error: APIError) -> dict[str, Any]:
    return {
        "ok": False,
        "status": error.status,
        "code": error.code,
        "message": error.message,
        "details": error.details,
        "headers": error.headers,
    }


class _Connection(socketserver.BaseRequestHandler):
    server: HandlerServer

    def handle(self) -> None:
        sock: socket.socket = self.request
        while True:
            sock.settimeout(300)
            try:
                header, payload = wire.receive(sock)
            except (ConnectionError, OSError, ValueError):
                return
            frames = self.server.frames(header, payload)
            try:
                for frame in frames:
                    wire.send(sock, frame)
            except OSError:  # the worker went away: closing the frames ends the handler's stream
                return
            finally:
                frames.close()


class HandlerServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str, process: HandlerProcess) -> None:
        self.process = process
        super().__init__(path, _Connection)

    def frames(self, header: dict[str, Any], payload: bytes) -> Generator[dict[str, Any]]:
        """The answer: one frame, or a stream's; a failure is an error frame, and the last."""
        try:
            if header.get("op") == "info":
                yield {"ok": True, **self.process.info()}
            elif header.get("op") == "predict":
                answer = self.process.predict(header, payload)
                yield from [answer] if isinstance(answer, dict) else answer
            else:
                raise APIError(f"unknown op {header.get('op')!r}")
        except Exception as error:
            yield self.failure(error)

    def failure(self, error: Exception) -> dict[str, Any]:
        if isinstance(error, APIError):
            return error_frame(error)
        log.error(
            "handler request failed",
            extra={"inference.model": self.process.model_id, "error.type": type(error).__name__},
        )
        return error_frame(APIError("The model failed on this input.", code="model_error"))


def _watch_for_hangs(process: HandlerProcess) -> None:
    """End the process when one batch has run for three deadlines: the supervisor restarts it."""
    while True:
        time.sleep(0.5)
        runner = process.runner
        started = getattr(runner, "busy_since", None) if runner else None
        if started is not None and time.monotonic() - started > 3 * process.timeout_s:
            log.error(
                "handler hung; restarting its process", extra={"inference.model": process.model_id}
            )
            logging.shutdown()
            os._exit(3)


def serve(model_id: str, path: str) -> int:
    from api.config import Config
    from api.observability.logs import configure_logging
    from api.runtime.supervisor import end_with_parent, stop_on_sigterm

    end_with_parent()
    stop_on_sigterm()
    config = Config()
    configure_logging(
        service_name=config.SERVICE_NAME,
        fmt=config.LOG_FORMAT,
        level=config.LOG_LEVEL,
        log_file=config.LOG_FILE,
    )
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    process = HandlerProcess(model_id)
    if os.path.exists(path):
        os.unlink(path)
    server = HandlerServer(path, process)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.5}, daemon=True
    ).start()
    process.load(config.MODELS, config.INFERENCE_TIMEOUT_S)
    threading.Thread(target=_watch_for_hangs, args=(process,), daemon=True).start()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.server_close()
        if process.runner is not None:
            process.runner.close()
        if os.path.exists(path):
            os.unlink(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    from api.runtime.handlers.supervisor import supervise

    parser = argparse.ArgumentParser(description="one modelgate handler model")
    parser.add_argument("--check", action="store_true", help="check every handler in MODELS")
    parser.add_argument("--model", help="the model id in MODELS")
    parser.add_argument("--socket", help="the Unix socket to listen on")
    parser.add_argument("--supervise", action="store_true", help="run it and restart it")
    args = parser.parse_args(argv)
    if args.check:
        from api.runtime.handlers.specs import check_models

        return check_models(os.environ.get("MODELS", ""))
    if not args.model or not args.socket:
        parser.error("--model and --socket are required")
    if args.supervise:
        return supervise(args.model, args.socket)
    return serve(args.model, args.socket)


if __name__ == "__main__":
    from api.process.ending import exit_now

    exit_now(main())  # skips torch's ~3 s teardown (api/process/ending.py)

"""The upstream client's answers to what a replica does, against real HTTP servers on loopback.

The servers here misbehave on purpose (a closed port, a JSON list, a 400, a slow answer),
which no real engine does on demand; the client under test is the real one.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from api.edge.errors import Unprocessable
from api.runtime.errors import DeadlineExceeded
from api.runtime.upstreams.config import parse_upstream
from api.runtime.upstreams.openai import OpenAIUpstream, UpstreamFailed
from tests.services import free_port

GOOD = {"data": [{"index": 0, "embedding": [0.5, 0.25]}], "usage": {"prompt_tokens": 3}}


@contextlib.contextmanager
def replica(status: int, body: object, delay_s: float = 0.0) -> Iterator[str]:
    """An HTTP server answering every request with `status` and `body` as JSON: its base URL."""
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                seen.append(json.loads(self.rfile.read(length)))
            time.sleep(delay_s)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def client(*bases: str, settings: str = "") -> OpenAIUpstream:
    return OpenAIUpstream(parse_upstream("up", f"openai:{'|'.join(bases)} {settings}"))


def post(upstream: OpenAIUpstream) -> dict:
    body = {"model": "m", "input": ["a"]}
    return upstream.post("/embeddings", body, deadline=time.monotonic() + 5)


def test_a_refused_replica_is_skipped_and_the_next_answers():
    closed = f"http://127.0.0.1:{free_port()}/v1"
    with replica(200, GOOD) as base:
        upstream = client(closed, base)
        assert post(upstream) == GOOD
        assert post(upstream) == GOOD  # whichever replica comes first in the rotation
        assert upstream.check() == {closed: "unreachable", base: "ok"}


def test_an_answer_that_is_not_a_json_object_is_a_502():
    with replica(200, [1, 2]) as base, pytest.raises(UpstreamFailed) as failed:
        post(client(base))
    assert failed.value.status == 502


def test_a_4xx_is_a_422_with_the_upstreams_message():
    refusal = {"error": {"message": "input too long"}}
    with replica(400, refusal) as base, pytest.raises(Unprocessable) as refused:
        post(client(base))
    assert "HTTP 400" in refused.value.message and "input too long" in refused.value.message


def test_no_answer_within_timeout_s_is_a_504_and_not_retried():
    with replica(200, GOOD, delay_s=1.0) as slow, replica(200, GOOD) as fast:
        upstream = client(slow, fast, settings="timeout_s=0.3")
        outcomes = []
        for _ in range(2):  # one of the two calls starts on the slow replica
            try:
                outcomes.append(post(upstream) == GOOD)
            except DeadlineExceeded as error:
                assert error.status == 504
                outcomes.append(False)
        assert sorted(outcomes) == [False, True]

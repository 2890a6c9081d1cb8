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
from api.runtime.upstreams.embedding import UpstreamBatcher, UpstreamEmbeddingModel
from api.runtime.upstreams.openai import OpenAIUpstream, UpstreamFailed
from tests.services import free_port

GOOD = {"data": [{"index": 0, "embedding": [0.5, 0.25]}], "usage": {"prompt_tokens": 3}}


class JSONHandler(BaseHTTPRequestHandler):
    """Answers with `reply(status, body)` as JSON; logs nothing."""

    def reply(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """`handler` on a loopback port, in a thread, until the block ends: its `/v1` base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def replica(status: int, body: object, delay_s: float = 0.0) -> Iterator[str]:
    """An HTTP server answering every request with `status` and `body` as JSON: its base URL."""
    seen: list[dict] = []

    class Handler(JSONHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                seen.append(json.loads(self.rfile.read(length)))
            time.sleep(delay_s)
            self.reply(status, body)

        do_GET = do_POST = _answer

    with serving(Handler) as base:
        yield base


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


@contextlib.contextmanager
def embedder(hold: threading.Event | None = None) -> Iterator[tuple[str, list[list[str]]]]:
    """An embeddings server: [len(text), index] per input, usage = total characters; a
    400 for a batch with an input holding "bad", a 500 for one starting "fail", 0.6 s
    more for one starting "slow". It holds each request until `hold` is set. Yields its
    base URL and the inputs it got."""
    seen: list[list[str]] = []

    class Handler(JSONHandler):
        def do_POST(self) -> None:
            texts = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["input"]
            seen.append(texts)
            if hold is not None:
                hold.wait(5)
            if any(text.startswith("slow") for text in texts):
                time.sleep(0.6)
            status, body = (
                200,
                {
                    "data": [
                        {"index": i, "embedding": [len(text), i]} for i, text in enumerate(texts)
                    ],
                    "usage": {"prompt_tokens": sum(len(text) for text in texts)},
                },
            )
            if any("bad" in text for text in texts):
                status, body = 400, {"error": {"message": "bad input"}}
            if any(text.startswith("fail") for text in texts):
                status, body = 500, {"error": {"message": "engine crashed"}}
            self.reply(status, body)

    with serving(Handler) as base:
        try:
            yield base, seen
        finally:
            if hold is not None:
                hold.set()  # before the server's shutdown, which waits for held requests


def batcher(base: str, settings: str = "concurrency=1") -> UpstreamBatcher:
    config = parse_upstream("up", f"openai:{base} {settings}")
    return UpstreamBatcher(
        UpstreamEmbeddingModel(config),
        64,
        concurrency=config.concurrency,
        max_batch=config.max_batch,
    )


def calls_behind_one_in_flight(sender: UpstreamBatcher, seen: list, hold, first, *waiting):
    """Send `first` (held by the server), then `waiting` from their own threads once the
    server has it; release the server when they all wait. Each call's outcome, in order."""
    outcomes: list[object] = [None] * (1 + len(waiting))

    def call(index: int, texts: list[str]) -> None:
        try:
            outcomes[index] = sender.run(texts, deadline=time.monotonic() + 5)
        except Exception as error:
            outcomes[index] = error

    threads = [threading.Thread(target=call, args=(0, first))]
    threads[0].start()
    until(lambda: len(seen) == 1)
    for index, texts in enumerate(waiting, start=1):
        threads.append(threading.Thread(target=call, args=(index, texts)))
        threads[-1].start()
    until(lambda: len(sender._waiting) == len(waiting))
    hold.set()
    for thread in threads:
        thread.join(10)
    return outcomes


def until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_a_lone_call_goes_at_once_in_its_own_post():
    with embedder() as (base, seen):
        sender = batcher(base)
        assert sender.run(["ab", "cde"], deadline=time.monotonic() + 5) == [
            ([2.0, 0.0], 2),
            ([3.0, 1.0], 3),
        ]
        assert seen == [["ab", "cde"]]


def test_calls_waiting_behind_a_post_in_flight_share_the_next_post():
    hold = threading.Event()
    with embedder(hold) as (base, seen):
        sender = batcher(base)
        outcomes = calls_behind_one_in_flight(sender, seen, hold, ["a"], ["bb"], ["ccc", "dddd"])
        assert len(seen) == 2 and sorted(seen[1]) == ["bb", "ccc", "dddd"]
    assert outcomes[0] == [([1.0, 0.0], 1)]
    assert [vector[0] for vector, _ in outcomes[1]] == [2.0]  # its own vectors, not a neighbour's
    assert [vector[0] for vector, _ in outcomes[2]] == [3.0, 4.0]
    # usage.prompt_tokens of the merged POST (9), split in proportion to the texts' lengths
    assert [tokens for _, tokens in outcomes[1]] == [2]
    assert [tokens for _, tokens in outcomes[2]] == [3, 4]


def test_a_merged_post_carries_at_most_max_batch_texts():
    hold = threading.Event()
    with embedder(hold) as (base, seen):
        sender = batcher(base, "concurrency=1 max_batch=2")
        outcomes = calls_behind_one_in_flight(sender, seen, hold, ["a"], ["b"], ["c"], ["d"])
        assert sorted(len(texts) for texts in seen[1:]) == [1, 2]
    assert all(isinstance(outcome, list) for outcome in outcomes)


def test_a_refused_merged_post_is_sent_again_call_by_call():
    hold = threading.Event()
    with embedder(hold) as (base, seen):
        sender = batcher(base)
        outcomes = calls_behind_one_in_flight(sender, seen, hold, ["a"], ["bad one"], ["fine"])
        assert sorted(map(sorted, seen[2:])) == [["bad one"], ["fine"]]  # after the merged 400
    assert isinstance(outcomes[1], Unprocessable) and "bad input" in outcomes[1].message
    assert outcomes[2] == [([4.0, 0.0], 4)]


def test_a_failed_merged_post_is_every_calls_502_and_not_retried():
    hold = threading.Event()
    with embedder(hold) as (base, seen):
        sender = batcher(base)
        outcomes = calls_behind_one_in_flight(sender, seen, hold, ["a"], ["fail"], ["fine"])
        assert len(seen) == 2  # the merged POST may have run: not sent again
    assert isinstance(outcomes[1], UpstreamFailed) and outcomes[1] is outcomes[2]
    assert outcomes[1].status == 502


def test_a_call_waiting_past_its_deadline_leaves_with_a_504():
    hold = threading.Event()
    with embedder(hold) as (base, seen):
        sender = batcher(base)
        first = threading.Thread(
            target=sender.run, args=(["a"],), kwargs={"deadline": time.monotonic() + 5}
        )
        first.start()
        until(lambda: len(seen) == 1)
        with pytest.raises(DeadlineExceeded):
            sender.run(["late"], deadline=time.monotonic() + 0.1)
        assert not sender._waiting  # it left the queue
        hold.set()
        first.join(5)
    assert seen == [["a"]]


def test_a_refused_merged_post_is_not_sent_again_for_a_caller_who_left():
    hold = threading.Event()
    with embedder(hold) as (base, seen):
        sender = batcher(base)
        outcomes: dict[str, object] = {}

        def call(text: str, seconds: float) -> None:
            try:
                outcomes[text] = sender.run([text], deadline=time.monotonic() + seconds)
            except Exception as error:
                outcomes[text] = error

        threads = [threading.Thread(target=call, args=("a", 5))]
        threads[0].start()
        until(lambda: len(seen) == 1)
        threads += [
            threading.Thread(target=call, args=("slow bad", 0.4)),
            threading.Thread(target=call, args=("fine", 5)),
        ]
        for thread in threads[1:]:
            thread.start()
        until(lambda: len(sender._waiting) == 2)
        hold.set()  # the merged POST takes 0.6 s: "slow bad" leaves at 0.4, then the 400
        for thread in threads:
            thread.join(10)
        assert sorted(map(sorted, seen[1:])) == [["fine"], ["fine", "slow bad"]]
        assert not sender._waiting and sender._in_flight == 0
    assert isinstance(outcomes["slow bad"], DeadlineExceeded)
    assert outcomes["fine"] == [([4.0, 0.0], 4)]

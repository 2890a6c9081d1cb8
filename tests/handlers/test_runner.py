"""The batching wrapper: concurrent items share one predict call; failures stay contained."""

from __future__ import annotations

import logging
import threading
import time

import pytest
import torch  # noqa: F401 - loaded before any deadline starts, as in the model process

from api.runtime.errors import DeadlineExceeded
from api.runtime.handlers.declarations import declare
from api.runtime.handlers.inputs import check_request
from api.runtime.handlers.runner import HandlerFailed, HandlerRunner
from tests.handlers import images
from tests.handlers.sample_handler import Broken, Liar, Sleepy, Tiny, Vectors


def runner_for(handler_class, model_id="m"):
    handler = handler_class()
    handler.setup("cpu")
    return HandlerRunner(handler, declare(handler_class, model_id))


class Gated(Tiny):
    """Tiny whose first batch waits to be let go, so the rest queue up behind it."""

    def setup(self, device: str) -> None:
        super().setup(device)
        self.entered = threading.Event()
        self.release = threading.Event()

    def predict(self, batch: list[dict]) -> list[dict]:
        self.entered.set()
        assert self.release.wait(5)
        return super().predict(batch)


def test_concurrent_items_are_batched_and_answered_in_order():
    runner = runner_for(Gated)
    results: dict[int, tuple] = {}

    def call(index: int) -> None:
        color = (250, 0, 0) if index % 2 else (10, 0, 0)
        checked = check_request(runner.declaration, {}, {"image": images.png(color=color)})
        results[index] = runner.predict(
            checked.values, checked.blobs, deadline=time.monotonic() + 10
        )

    threads = [threading.Thread(target=call, args=(index,)) for index in range(8)]
    threads[0].start()
    assert runner.handler.entered.wait(5)  # the first item is in predict, alone
    for thread in threads[1:]:
        thread.start()
    waited = time.monotonic() + 5
    while runner.batcher.queue_depth < 7 and time.monotonic() < waited:
        time.sleep(0.005)
    runner.handler.release.set()
    for thread in threads:
        thread.join()
    runner.close()
    assert [results[index][0]["label"] for index in range(8)] == ["dark", "red"] * 4
    assert results[1] == ({"label": "red", "scores": [250 / 255, 1 - 250 / 255]}, 1)
    assert runner.handler.batches == [1, 4, 3]  # the queued seven, at most four at a time


def test_units_come_from_predict_when_it_says():
    runner = runner_for(Vectors)
    checked = check_request(runner.declaration, {"x": [[1, 2, 3], [4, 5, 6]], "k": 2})
    assert runner.predict(checked.values, {}, deadline=time.monotonic() + 5) == ({"sum": 42.0}, 3)
    runner.close()


def test_a_raising_handler_is_a_500_whose_log_has_no_input(caplog):
    runner = runner_for(Broken, "broken")
    checked = check_request(runner.declaration, {"x": [[1], [2]], "note": "s3cr"})
    with caplog.at_level(logging.INFO), pytest.raises(HandlerFailed) as raised:
        runner.predict(checked.values, {}, deadline=time.monotonic() + 5)
    runner.close()
    assert raised.value.status == 500
    line = next(record for record in caplog.records if record.message == "handler predict failed")
    assert (
        line.__dict__["error.type"] == "ValueError" and line.__dict__["inference.model"] == "broken"
    )
    assert "s3cr" not in caplog.text


def test_an_output_that_breaks_the_declaration_is_a_500():
    runner = runner_for(Liar)
    checked = check_request(runner.declaration, {"x": [[1], [2]]})
    with pytest.raises(HandlerFailed):
        runner.predict(checked.values, {}, deadline=time.monotonic() + 5)
    runner.close()


def test_a_hang_ends_at_the_deadline():
    runner = runner_for(Sleepy)
    checked = check_request(runner.declaration, {"x": [[1], [2]]})
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        runner.predict(checked.values, {}, deadline=time.monotonic() + 0.2)
    assert time.monotonic() - started < 0.6
    runner.close()


def test_a_stream_of_a_batched_handler_is_its_one_answer():
    handler = Vectors()
    handler.setup("cpu")
    runner = HandlerRunner(handler, declare(Vectors, "vectors"))
    try:
        events = list(runner.stream({"x": [[1, 2], [3, 4]]}, {}, deadline=time.monotonic() + 5))
    finally:
        runner.close()
    assert events == [({"sum": 10.0}, 2)]


class Meeting:
    """A streaming handler whose item waits until another item is running beside it."""

    inputs = [{"name": "word", "kind": "text"}]
    outputs = [{"name": "text", "kind": "text"}]
    max_batch_size = 1

    def setup(self, device: str) -> None:
        self.both_running = threading.Barrier(2, timeout=3)

    def predict(self, batch: list[dict]):
        self.both_running.wait()
        yield {"text": batch[0]["word"]}


@pytest.mark.parametrize("concurrency", [1, 2])
def test_a_streaming_model_runs_concurrency_items_at_once(concurrency):
    """`concurrency=2` lets two streams run side by side; with 1 the second waits its turn
    (here past its deadline, a 504) while the first waits for a partner that never comes."""
    handler = Meeting()
    handler.setup("cpu")
    runner = HandlerRunner(handler, declare(Meeting, "meet"), concurrency=concurrency)
    outcomes: dict[str, object] = {}

    def call(word: str) -> None:
        try:
            events = runner.stream({"word": word}, {}, deadline=time.monotonic() + 1.5)
            outcomes[word] = [outputs["text"] for outputs, _ in events]
        except Exception as error:
            outcomes[word] = type(error).__name__

    threads = [threading.Thread(target=call, args=(word,)) for word in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    runner.close()
    if concurrency == 2:
        assert outcomes == {"a": ["a"], "b": ["b"]}
    else:
        assert sorted(map(str, outcomes.values())) == ["DeadlineExceeded", "HandlerFailed"]


def test_concurrency_is_refused_for_a_batched_model():
    from api.config import ConfigError
    from api.runtime.handlers.specs import check_concurrency, parse_handler

    settings = parse_handler("tiny", "tests.handlers.sample_handler:Tiny concurrency=2")
    assert settings.concurrency == 2
    with pytest.raises(ConfigError, match="'tiny': concurrency applies to a streaming handler"):
        check_concurrency("tiny", settings, streaming=False)
    check_concurrency("count", settings, streaming=True)

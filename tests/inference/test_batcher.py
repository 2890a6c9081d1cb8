"""MicroBatcher with plain functions: batching, a bounded queue, deadlines, failures, shutdown."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from api.runtime.batcher import MicroBatcher
from api.runtime.errors import DeadlineExceeded, QueueFull


class RecordingObserver:
    def __init__(self) -> None:
        self.batch_sizes: list[int] = []
        self.depths: list[int] = []
        self.waits: list[float] = []

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_sizes.append(size)

    def observe_queue_wait(self, seconds: float) -> None:
        self.waits.append(seconds)

    def set_queue_depth(self, depth: int) -> None:
        self.depths.append(depth)


def soon(seconds: float = 5.0) -> float:
    return time.monotonic() + seconds


class BlockingBatch:
    """A batch function that records its batches and holds while `gate` is clear."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.started = threading.Event()
        self.batches: list[list[str]] = []

    def __call__(self, items: list[str]) -> list[str]:
        self.batches.append(items)
        self.started.set()
        assert self.gate.wait(5)
        return [item.upper() for item in items]


@pytest.fixture
def make_batcher() -> Iterator[Callable[..., MicroBatcher[str, str]]]:
    made: list[MicroBatcher[str, str]] = []

    def make(run_batch: Callable[[list[str]], list[str]], **options: object) -> MicroBatcher:
        batcher: MicroBatcher[str, str] = MicroBatcher(run_batch, name="test", **options)  # type: ignore[arg-type]
        made.append(batcher)
        return batcher

    yield make
    for batcher in made:
        batcher.close()


def test_results_come_back_to_each_caller_in_order(make_batcher) -> None:
    observer = RecordingObserver()
    batcher = make_batcher(lambda items: [item * 2 for item in items], observer=observer)

    assert batcher.run(["a", "b", "c"], deadline=soon()) == ["aa", "bb", "cc"]
    assert observer.batch_sizes == [3]
    assert len(observer.waits) == 3
    assert observer.depths[-1] == 0


def test_thread_starts_on_first_submit_and_stops_on_close(make_batcher) -> None:
    batcher = make_batcher(lambda items: items)
    assert batcher._thread is None

    batcher.run(["x"], deadline=soon())
    thread = batcher._thread
    assert thread is not None and thread.is_alive()

    batcher.close()
    assert not thread.is_alive()
    with pytest.raises(QueueFull):
        batcher.submit(["y"], deadline=soon())


def test_concurrent_submits_share_batches_up_to_the_cap(make_batcher) -> None:
    run_batch = BlockingBatch()
    batcher = make_batcher(run_batch, max_batch=4, max_wait_ms=50)
    futures = batcher.submit(["first"], deadline=soon())
    assert run_batch.started.wait(5)  # the worker is busy; the next ten queue up
    futures += [f for i in range(10) for f in batcher.submit([f"item{i}"], deadline=soon())]

    run_batch.gate.set()

    assert [future.result(5) for future in futures] == ["FIRST"] + [f"ITEM{i}" for i in range(10)]
    assert [len(batch) for batch in run_batch.batches] == [1, 4, 4, 2]


def test_full_queue_refuses_at_once_with_retry_after(make_batcher) -> None:
    run_batch = BlockingBatch()
    batcher = make_batcher(run_batch, max_batch=1, max_queue=2)
    batcher.submit(["running"], deadline=soon())
    assert run_batch.started.wait(5)
    batcher.submit(["queued-1", "queued-2"], deadline=soon())

    started = time.monotonic()
    with pytest.raises(QueueFull) as raised:
        batcher.submit(["one-too-many"], deadline=soon())

    assert time.monotonic() - started < 0.1
    assert raised.value.status == 503
    assert raised.value.headers["Retry-After"] == "1"
    run_batch.gate.set()


def test_deadline_passes_while_queued_times_out_and_never_runs(make_batcher) -> None:
    run_batch = BlockingBatch()
    batcher = make_batcher(run_batch, max_batch=1)
    blocker = batcher.submit(["blocker"], deadline=soon())
    assert run_batch.started.wait(5)

    started = time.monotonic()
    with pytest.raises(DeadlineExceeded) as raised:
        batcher.run(["late"], deadline=time.monotonic() + 0.05)
    assert 0.04 < time.monotonic() - started < 1
    assert raised.value.status == 504

    late_but_not_cancelled = batcher.submit(["expired"], deadline=time.monotonic() + 0.01)
    time.sleep(0.03)
    run_batch.gate.set()
    assert blocker[0].result(5) == "BLOCKER"
    with pytest.raises(DeadlineExceeded):
        late_but_not_cancelled[0].result(5)
    assert run_batch.batches == [["blocker"]]


def test_a_failing_batch_fails_only_its_own_callers(make_batcher) -> None:
    def run_batch(items: list[str]) -> list[str]:
        if "boom" in items:
            raise RuntimeError("model exploded")
        return [item.upper() for item in items]

    batcher = make_batcher(run_batch, max_batch=2, max_wait_ms=20)
    doomed = batcher.submit(["boom", "x"], deadline=soon())
    fine = batcher.submit(["y", "z"], deadline=soon())

    for future in doomed:
        with pytest.raises(RuntimeError, match="model exploded"):
            future.result(5)
    assert [future.result(5) for future in fine] == ["Y", "Z"]
    assert batcher.run(["after"], deadline=soon()) == ["AFTER"]


def test_a_wrong_number_of_results_fails_the_batch(make_batcher) -> None:
    batcher = make_batcher(lambda items: items[:-1])

    with pytest.raises(RuntimeError, match="gave 1 results"):
        batcher.run(["a", "b"], deadline=soon())

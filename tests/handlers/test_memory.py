"""The model process gives its freed heap back when the model pauses, never inside a call."""

from __future__ import annotations

import threading
import time

from api.runtime.handlers.memory import IdleTrim, release_memory


class Trims:
    def __init__(self) -> None:
        self.count = 0
        self.done = threading.Event()

    def __call__(self) -> None:
        self.count += 1
        self.done.set()


def test_no_trim_while_batches_keep_coming_then_one_after_the_pause():
    trims = Trims()
    memory = IdleTrim(trims, idle_s=0.3, every=1000)
    for _ in range(10):  # batches 0.05 s apart: never idle for 0.3 s
        memory.batch_done()
        time.sleep(0.05)
    assert trims.count == 0
    assert trims.done.wait(2.0)
    time.sleep(0.5)
    assert trims.count == 1  # once per pause, not once per batch


def test_a_load_that_never_pauses_is_trimmed_every_n_batches():
    trims = Trims()
    memory = IdleTrim(trims, idle_s=60.0, every=5)
    for _ in range(4):
        memory.batch_done()
    time.sleep(0.2)
    assert trims.count == 0
    memory.batch_done()
    assert trims.done.wait(2.0) and trims.count == 1


def test_batch_done_returns_at_once_whatever_the_trim_costs():
    slow = threading.Event()
    memory = IdleTrim(lambda: slow.wait(5.0), idle_s=0.0, every=1)
    started = time.monotonic()
    for _ in range(3):
        memory.batch_done()
    assert time.monotonic() - started < 0.1
    slow.set()


def test_release_memory_runs_here():
    release_memory()  # glibc's malloc_trim on this Debian machine; a no-op elsewhere

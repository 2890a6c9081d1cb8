"""GenerationGate: a fixed number of slots, a bounded wait, refusals that never hang."""

from __future__ import annotations

import threading
import time

import pytest

from api.runtime.errors import DeadlineExceeded, QueueFull
from api.runtime.gate import GenerationGate


def test_slots_are_shared_and_given_back() -> None:
    gate = GenerationGate(slots=2, max_waiting=1)
    gate.acquire(deadline=time.monotonic() + 1)
    with gate.hold_slot(deadline=time.monotonic() + 1), pytest.raises(DeadlineExceeded):
        gate.acquire(deadline=time.monotonic() + 0.02)
    gate.acquire(deadline=time.monotonic() + 0.02)


def test_waiters_beyond_the_queue_are_refused_at_once() -> None:
    gate = GenerationGate(slots=1, max_waiting=1)
    gate.acquire(deadline=time.monotonic() + 1)
    waiter = threading.Thread(target=gate.acquire, kwargs={"deadline": time.monotonic() + 5})
    waiter.start()
    while gate.waiting == 0:
        time.sleep(0.001)

    started = time.monotonic()
    with pytest.raises(QueueFull):
        gate.acquire(deadline=time.monotonic() + 5)
    assert time.monotonic() - started < 0.1

    gate.release()
    waiter.join(5)
    assert gate.waiting == 0

"""The replicas of one upstream model in this worker: round-robin, breakers and health.

Each replica has a circuit breaker: `failures` consecutive failures (a refused or
timed-out connection, a 5xx, a health check that fails) open it for `cooldown_s`;
then one call at a time is let through as a trial: its success closes the breaker,
its failure opens it again. `order()` gives the replicas to try for one request: the
closed ones from the next in round-robin, then a half-open one whose trial is due,
and, when every breaker is open, none (the caller answers 503 at once). State is per
worker process (each gunicorn worker learns on its own, within `failures` calls).
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field

from api.runtime.upstreams.config import replica_label


@dataclass
class Replica:
    base: str
    failures_to_open: int
    cooldown_s: float
    failures: int = 0
    open_until: float = 0.0  # monotonic; 0 when closed
    trial_running: bool = False
    last_check: str = "unknown"  # the last health check: ok, unreachable, unknown
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def label(self) -> str:
        return replica_label(self.base)

    def state(self, now: float | None = None) -> str:
        """closed, open or half-open (cool-down over, a trial is allowed)."""
        if not self.open_until:
            return "closed"
        return "open" if (now or time.monotonic()) < self.open_until else "half-open"

    def admit(self) -> bool:
        """May a call go to this replica now? Takes the trial slot of a half-open one."""
        with self._lock:
            state = self.state()
            if state == "closed":
                return True
            if state == "half-open" and not self.trial_running:
                self.trial_running = True
                return True
            return False

    def succeeded(self) -> None:
        with self._lock:
            self.failures = 0
            self.open_until = 0.0
            self.trial_running = False

    def failed(self) -> None:
        with self._lock:
            self.failures += 1
            if self.trial_running or self.failures >= self.failures_to_open:
                self.open_until = time.monotonic() + self.cooldown_s
            self.trial_running = False

    def released(self) -> None:
        """A call ended that says nothing of the replica's health (a 4xx): free the trial."""
        with self._lock:
            self.trial_running = False

    def health(self) -> str:
        """What /readyz shows: ok, unreachable, or the breaker's state when not closed."""
        state = self.state()
        if state != "closed":
            return f"breaker {state}"
        return self.last_check


class ReplicaSet:
    """The replicas of one upstream model, tried in round-robin order."""

    def __init__(self, bases: tuple[str, ...], failures: int, cooldown_s: float) -> None:
        self.replicas = [Replica(base, failures, cooldown_s) for base in bases]
        self._next = itertools.count()

    def order(self) -> list[Replica]:
        """The replicas a request may try, first choice first (not yet admitted)."""
        start = next(self._next) % len(self.replicas)
        rotated = self.replicas[start:] + self.replicas[:start]
        now = time.monotonic()
        closed = [r for r in rotated if r.state(now) == "closed"]
        # A replica whose last health check failed goes after the healthy ones.
        closed.sort(key=lambda r: r.last_check == "unreachable")
        return closed + [r for r in rotated if r.state(now) == "half-open"]

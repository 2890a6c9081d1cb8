"""A realistic mix of calls through nginx, in threads, for the fault scenarios and bench/load.py.

Each call carries its own `X-Trace-Id`, so a scenario can look for exactly the calls
that were answered in the usage table and the log file afterwards. Every result is
kept: the action, the status (0 when the connection failed), the latency, the trace
id. A 429 is the limiter doing its job and is counted apart from errors.
"""

from __future__ import annotations

import itertools
import json
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import requests

from api import create_app
from api.config import TestConfig
from api.extensions import db
from api.runtime.errors import RETRY_AFTER_S
from tests.auth.conftest import PASSWORD
from tests.nginx.server import API
from tests.stack import Stack
from tests.tokens.conftest import make_account

METERED = frozenset({"models", "embeddings", "chat", "stream"})  # a usage row per answer
BATCH_LINE = {"method": "POST", "url": "/v1/chat/completions"}


@dataclass(frozen=True)
class Result:
    action: str
    status: int  # 0: no answer (connection refused, reset, timed out)
    seconds: float
    trace: str
    detail: str = ""
    started: float = 0.0  # time.monotonic() when the call was sent
    shed: int = 0  # 503 "overloaded" answers among its tries (the last one included)

    def spans(self, moment: float) -> bool:
        """The call was in flight at `moment` (a time.monotonic() reading)."""
        return self.started < moment < self.started + self.seconds

    @property
    def error(self) -> bool:
        return self.status != 429 and not 200 <= self.status < 300


@dataclass
class Account:
    email: str
    token: str  # an API token with the embed, generate, usage and batch scopes
    password: str = PASSWORD


def live_account(database_url: str, email: str = "load@example.org") -> Account:
    """A verified user in the live database with a token that may embed, generate and read usage."""
    app = create_app(TestConfig(SQLALCHEMY_DATABASE_URI=database_url))
    account = make_account(app, email)
    token = account.mint("load", scopes=("embed", "generate", "usage", "batch"))["token"]
    with app.app_context():
        db.engine.dispose()
    return Account(email, token)


class Mix:
    """The calls a user makes, each a method returning its status and a detail."""

    WEIGHTS = {  # logins are rare next to calls with a token (and cost an argon2 hash each)
        "models": 3, "embeddings": 3, "chat": 2, "stream": 2, "usage": 1, "login": 0.2, "batch": 0.1
    }  # fmt: skip

    def __init__(
        self,
        stack: Stack,
        account: Account,
        weights: dict[str, float] | None = None,
        retries: int = 0,
    ) -> None:
        self.stack = stack
        self.account = account
        self.weights = weights or self.WEIGHTS
        # As OpenAI's client libraries do (2 retries by default): a 503 "overloaded" is
        # tried again after its retry-after-ms or Retry-After (at most 2 s); each shed
        # answer is counted.
        self.retries = retries
        self.batches: list[str] = []  # ids of the batches created
        self.stream_tokens = 24
        self._lock = threading.Lock()
        self._last = threading.local()  # this thread's last answer's retry wait

    def call(self, session: requests.Session, action: str) -> Result:
        started, shed = time.monotonic(), 0
        for attempt in range(self.retries + 1):
            trace = uuid.uuid4().hex  # each try is its own request, with its own lines
            try:
                status, detail = getattr(self, action)(session, trace)
            except requests.RequestException as error:  # the reason too: a cut needs its cause
                status, detail = 0, f"{type(error).__name__}: {error}"[:300]
            if status != 503 or '"overloaded"' not in detail:
                break
            shed += 1
            if attempt < self.retries:
                time.sleep(min(2.0, getattr(self._last, "retry_after", RETRY_AFTER_S)))
        seconds = time.monotonic() - started
        return Result(action, status, seconds, trace, detail, started, shed)

    def _send(
        self, session: requests.Session, method: str, path: str, trace: str, **kwargs
    ) -> requests.Response:
        headers = {
            "Host": API,
            "X-Trace-Id": trace,
            "Authorization": f"Bearer {self.account.token}",
            **kwargs.pop("headers", {}),
        }
        answer = session.request(
            method, self.stack.url + path, headers=headers, verify=False, timeout=60, **kwargs
        )
        # As OpenAI's clients read it: retry-after-ms first, then Retry-After.
        wait_ms = answer.headers.get("retry-after-ms")
        wait_s = answer.headers.get("Retry-After", str(RETRY_AFTER_S))
        self._last.retry_after = int(wait_ms) / 1000 if wait_ms else float(wait_s)
        return answer

    def get(self, path: str) -> requests.Response:
        """A plain GET with the account's token (a batch's state, a file's content)."""
        with requests.Session() as session:
            return self._send(session, "GET", path, uuid.uuid4().hex)

    def submit_batch(
        self, session: requests.Session, lines: list[dict], trace: str
    ) -> requests.Response:
        """Upload `lines` as a JSONL file and create a batch on it; the creation's answer."""
        content = "".join(json.dumps(line) + "\n" for line in lines).encode()
        uploaded = self._send(
            session, "POST", "/v1/files", trace,
            files={"file": ("lines.jsonl", content)}, data={"purpose": "batch"},
        )  # fmt: skip
        if uploaded.status_code != 200:
            return uploaded
        created = {"input_file_id": uploaded.json()["id"], "endpoint": lines[0]["url"],
                   "completion_window": "24h"}  # fmt: skip
        return self._send(session, "POST", "/v1/batches", trace, json=created)

    @staticmethod
    def _outcome(answer: requests.Response) -> tuple[int, str]:
        return answer.status_code, "" if answer.ok else answer.text[:200]

    def models(self, session: requests.Session, trace: str) -> tuple[int, str]:
        return self._outcome(self._send(session, "GET", "/v1/models", trace))

    def embeddings(self, session: requests.Session, trace: str) -> tuple[int, str]:
        body = {"model": "all-minilm-l6-v2", "input": f"A sentence to embed, number {trace[:6]}."}
        return self._outcome(self._send(session, "POST", "/v1/embeddings", trace, json=body))

    def chat(self, session: requests.Session, trace: str) -> tuple[int, str]:
        body = {
            "model": "storyteller",
            "messages": [{"role": "user", "content": "Tell me of a king."}],
            "max_tokens": 12,
        }
        return self._outcome(self._send(session, "POST", "/v1/chat/completions", trace, json=body))

    def stream(self, session: requests.Session, trace: str) -> tuple[int, str]:
        """A streamed completion; a cut or an error event after the 200 fails it (599)."""
        body = {
            "model": "storyteller",
            "prompt": "Once upon a time",
            "max_tokens": self.stream_tokens,
        }
        with self._send(
            session, "POST", "/v1/completions", trace, json={**body, "stream": True}, stream=True
        ) as answer:
            if answer.status_code != 200:
                return answer.status_code, answer.text[:200]
            events = [line for line in answer.iter_lines() if line.startswith(b"data: ")]
        failed = [event.decode()[:200] for event in events if event.startswith(b'data: {"error"')]
        if failed:  # reported in-band after the 200
            return 599, failed[0]
        done = bool(events) and events[-1] == b"data: [DONE]"
        return (200, f"{len(events)} events") if done else (599, f"cut after {len(events)}")

    def usage(self, session: requests.Session, trace: str) -> tuple[int, str]:
        return self._outcome(self._send(session, "GET", "/v1/usage", trace))

    def login(self, session: requests.Session, trace: str) -> tuple[int, str]:
        body = {"email": self.account.email, "password": self.account.password}
        answer = session.post(
            self.stack.url + "/v1/auth/login",
            headers={"Host": API, "X-Trace-Id": trace},
            json=body,
            verify=False,
            timeout=60,
        )
        return self._outcome(answer)

    def batch(self, session: requests.Session, trace: str) -> tuple[int, str]:
        """Upload a two-line JSONL file and start a batch on it."""
        body = {"model": "storyteller", "messages": [{"role": "user", "content": "Hi"}]}
        lines = [
            {"custom_id": f"{trace}-{n}", **BATCH_LINE, "body": {**body, "max_tokens": 4}}
            for n in range(2)
        ]
        created = self.submit_batch(session, lines, trace)
        if created.status_code == 200:
            with self._lock:
                self.batches.append(created.json()["id"])
        return self._outcome(created)


@dataclass
class Load:
    """`threads` users calling the mix back to back, or together at `rate` calls/s."""

    mix: Mix
    threads: int = 4
    rate: float | None = None  # None: as fast as answers come (closed loop)
    seed: int = 1
    results: list[Result] = field(default_factory=list)
    on_sample: Callable[[], None] | None = None  # called about once a second (memory samples)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers: list[threading.Thread] = []
        self._slots = itertools.count()
        self._started = 0.0

    def _next_action(self, rng: random.Random) -> str:
        actions, weights = zip(*self.mix.weights.items(), strict=True)
        return rng.choices(actions, weights)[0]

    def _run(self, number: int) -> None:
        rng = random.Random(self.seed * 1000 + number)
        with requests.Session() as session:
            while not self._stop.is_set():
                if self.rate:
                    due = self._started + next(self._slots) / self.rate
                    if self._stop.wait(max(0.0, due - time.monotonic())):
                        return
                result = self.mix.call(session, self._next_action(rng))
                with self._lock:
                    self.results.append(result)

    def _sample(self) -> None:
        while not self._stop.wait(1.0):
            if self.on_sample is not None:
                self.on_sample()

    def start(self) -> Load:
        self._started = time.monotonic()
        self._workers = [
            threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(self.threads)
        ]
        self._workers.append(threading.Thread(target=self._sample, daemon=True))
        for worker in self._workers:
            worker.start()
        return self

    def stop(self) -> list[Result]:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=90)
        return self.results

    def __enter__(self) -> Load:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def answered(self, actions: frozenset[str] = METERED) -> list[str]:
        """Trace ids of the calls of `actions` that were answered 2xx."""
        return [r.trace for r in self.results if r.action in actions and 200 <= r.status < 300]

    def errors(self) -> list[Result]:
        return [r for r in self.results if r.error]

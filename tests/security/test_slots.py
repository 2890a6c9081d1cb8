"""Concurrency slots are leases (issue 23, finding 3): a worker that dies gives its slots back.

Live: under real gunicorn (two workers), Redis and PostgreSQL, a worker SIGKILLed in the
middle of a stream leaves no slot held once its leases lapse, and the cap still holds
exactly across both workers. Unit: the lease store in the real Redis.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from api.access import ratelimits
from api.access.ratelimits import inference_slot
from api.edge.errors import TooManyRequests
from tests.services import gunicorn
from tests.stack import alive, gunicorn_workers
from tests.tokens.test_live import mint_token

CAP = 4  # INFERENCE_PER_USER's default
USER = 7
# The slots do not touch the database: one kind is enough for the unit tests.
ONE_DATABASE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
SLOW = {"prompt": "Once upon a time", "max_tokens": 200, "temperature": 0}


def _serving_worker(master: int, port: int, client_port: int, timeout: float = 10.0) -> int:
    """The gunicorn worker holding the server side of the connection from `client_port`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        inode = _server_socket_inode(port, client_port)
        for worker in gunicorn_workers(master) if inode else []:
            for fd in Path(f"/proc/{worker}/fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) == f"socket:[{inode}]":
                        return worker
        time.sleep(0.05)
    raise AssertionError(f"no worker holds the connection from port {client_port}")


def _server_socket_inode(port: int, client_port: int) -> str | None:
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, inode = fields[1], fields[2], fields[9]
        if local.endswith(f":{port:04X}") and remote.endswith(f":{client_port:04X}"):
            return inode if inode != "0" else None  # 0: not accepted yet
    return None


def _at_once(count: int, base: str, token: str) -> list[requests.Response]:
    """`count` slow completions, released at the same moment, each on its own connection."""
    barrier = threading.Barrier(count)

    def call(_: int) -> requests.Response:
        barrier.wait()
        return requests.post(
            f"{base}/v1/completions",
            json=SLOW,
            headers={"Authorization": f"Bearer {token}"},
            timeout=120,
        )

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(call, range(count)))


def test_a_killed_worker_gives_its_slots_back(tmp_path, live_database, redis_url, redis_db):
    token, _, _ = mint_token(live_database)
    env = {
        "DATABASE_URL": live_database,
        "REDIS_URL": redis_url,
        "MODELS": "storyteller",
        "RATE_LIMIT_DEFAULT": "1000/minute",
        "INFERENCE_PER_USER": str(CAP),
        "GUNICORN_CMD_ARGS": f"--pid {tmp_path / 'gunicorn.pid'}",
    }
    with gunicorn(env, tmp_path) as base:
        master = int((tmp_path / "gunicorn.pid").read_text())
        port = int(base.rsplit(":", 1)[1])
        # A stream holds a slot of each kind (its 200 says both are taken) and, 4 x 240
        # tokens long, is still running when its worker is killed.
        stream = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        stream.request(
            "POST",
            "/v1/completions",
            body=json.dumps({**SLOW, "max_tokens": 240, "n": 4, "stream": True}),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        assert stream.sock is not None
        client_port = stream.sock.getsockname()[1]
        response = stream.getresponse()
        assert response.status == 200, response.read()
        worker = _serving_worker(master, port, client_port)
        os.kill(worker, signal.SIGKILL)
        killed_at = time.monotonic()
        with pytest.raises((http.client.IncompleteRead, ConnectionError)):
            response.read()
        stream.close()
        while alive(worker) or len(gunicorn_workers(master)) < 2:  # gunicorn starts another
            assert time.monotonic() - killed_at < 30, "gunicorn did not replace the killed worker"
            time.sleep(0.1)

        # Once the dead worker's leases lapse, the cap's worth of calls at once all run.
        rounds = []
        while True:
            started = time.monotonic() - killed_at
            statuses = sorted(r.status_code for r in _at_once(CAP, base, token))
            rounds.append((round(started, 1), statuses))
            if statuses == [200] * CAP:
                break
            assert started < ratelimits.LEASE_S + 3, rounds  # began after the lapse, refused
            time.sleep(0.5)

        # The cap still holds exactly across both workers: CAP run, the rest are refused.
        answers = _at_once(CAP + 3, base, token)
        statuses = sorted(r.status_code for r in answers)
        assert statuses == [200] * CAP + [429] * 3, statuses
        refused = [r for r in answers if r.status_code == 429]
        assert all(int(r.headers["Retry-After"]) >= 1 for r in refused)
        codes = {r.json()["error"]["code"] for r in refused}
        assert codes == {"too_many_concurrent_requests"}, codes


def _redis_ms(redis_db) -> int:
    seconds, micros = redis_db.time()
    return seconds * 1000 + micros // 1000


def _slots(redis_db, kind: str = "all") -> dict[str, float]:
    return dict(redis_db.zrange(ratelimits.SLOT_KEY.format(kind, USER), 0, -1, withscores=True))


@ONE_DATABASE
def test_leases_nobody_renews_free_their_slots(limited_app, redis_db):
    app = limited_app(INFERENCE_PER_USER=2)
    key = ratelimits.SLOT_KEY.format("all", USER)
    now = _redis_ms(redis_db)
    redis_db.zadd(key, {"dead-worker-1": now - 1, "dead-worker-2": now - 1})  # lapsed
    with app.app_context(), inference_slot(USER), inference_slot(USER):
        assert "dead-worker-1" not in _slots(redis_db) and len(_slots(redis_db)) == 2
    assert _slots(redis_db) == {}

    redis_db.zadd(key, {"live-worker": now + 60_000})  # a call running in another worker
    with (
        app.app_context(),
        inference_slot(USER),
        pytest.raises(TooManyRequests) as refused,
        inference_slot(USER),
    ):
        pass
    assert refused.value.headers == {"Retry-After": "1"}
    assert refused.value.code == "too_many_concurrent_requests"
    assert list(_slots(redis_db)) == ["live-worker"]  # a refused call holds nothing


@ONE_DATABASE
def test_a_call_removes_only_its_own_leases(limited_app, redis_db):
    app = limited_app(INFERENCE_PER_USER=3, STREAMS_PER_USER=2)
    deadline = _redis_ms(redis_db) + 60_000
    for kind in ("all", "stream"):
        redis_db.zadd(ratelimits.SLOT_KEY.format(kind, USER), {"other": deadline})
    with app.app_context(), inference_slot(USER, stream=True):
        assert len(_slots(redis_db)) == 2 and len(_slots(redis_db, "stream")) == 2
    with app.app_context(), pytest.raises(RuntimeError), inference_slot(USER):
        raise RuntimeError("the model failed")
    assert _slots(redis_db) == _slots(redis_db, "stream") == {"other": deadline}


@ONE_DATABASE
def test_a_running_call_keeps_its_lease_and_a_lapsed_one_is_reclaimed(
    limited_app, redis_db, monkeypatch
):
    monkeypatch.setattr(ratelimits, "LEASE_S", 1.0)
    monkeypatch.setattr(ratelimits, "RENEW_EVERY_S", 0.2)
    monkeypatch.setattr(ratelimits, "_heartbeat", ratelimits._Heartbeat())  # wakes at 0.2 s
    app = limited_app(INFERENCE_PER_USER=2)
    key = ratelimits.SLOT_KEY.format("all", USER)
    redis_db.zadd(key, {"dead-worker": _redis_ms(redis_db) + 1000})  # nobody renews it
    with app.app_context(), inference_slot(USER):
        (mine,) = set(_slots(redis_db)) - {"dead-worker"}
        for _ in range(6):  # three lease lives: renewed all along
            time.sleep(0.5)
            assert _slots(redis_db)[mine] > _redis_ms(redis_db)
        assert redis_db.pttl(key) > 0
        with inference_slot(USER):  # the dead worker's slot is taken again
            assert "dead-worker" not in _slots(redis_db)
    assert not redis_db.exists(key)


@ONE_DATABASE
def test_the_cap_holds_exactly_across_processes_at_once(limited_app, redis_db):
    workers = [limited_app(INFERENCE_PER_USER=CAP) for _ in range(2)]  # a connection pool each
    calls = 4 * CAP
    arrived, leave = threading.Barrier(calls), threading.Event()
    admitted: list[bool] = []

    def call(number: int) -> None:
        with workers[number % 2].app_context():
            arrived.wait()
            try:
                with inference_slot(USER):
                    admitted.append(True)
                    leave.wait(10)
            except TooManyRequests:
                admitted.append(False)
                if admitted.count(False) == calls - CAP:
                    leave.set()

    with ThreadPoolExecutor(calls) as pool:
        list(pool.map(call, range(calls)))
    assert admitted.count(True) == CAP, admitted
    assert _slots(redis_db) == {}


@ONE_DATABASE
def test_without_redis_the_cap_holds_in_each_process(make_app):
    dead = "redis://127.0.0.1:1/0"
    app = make_app(REDIS_URL=dead, RATELIMIT_STORAGE_URI=dead, INFERENCE_PER_USER=1)
    with (
        app.app_context(),
        inference_slot(USER),
        pytest.raises(TooManyRequests) as refused,
        inference_slot(USER),
    ):
        pass
    assert refused.value.headers == {"Retry-After": "1"}
    with app.app_context(), inference_slot(USER):  # given back
        pass

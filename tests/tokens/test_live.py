"""API tokens and limits under real gunicorn (two workers), real PostgreSQL and real Redis."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
import redis
import requests

from api import create_app
from api.config import TestConfig
from api.extensions import db
from tests.conftest import _libpq
from tests.services import free_port, gunicorn
from tests.tokens.conftest import make_account


def mint_token(
    database_url: str, email: str = "dev@example.org"
) -> tuple[str, dict[str, str], int]:
    """Create a verified user with a token in the live database: (token, session headers, id)."""
    app = create_app(TestConfig(SQLALCHEMY_DATABASE_URI=database_url))
    account = make_account(app, email)
    created = account.mint()
    with app.app_context():
        db.engine.dispose()
    return created["token"], account.session, created["id"]


def pid_by_trace(log_file: Path) -> dict[str, int]:
    pids = {}
    for line in log_file.read_text().splitlines():
        record = json.loads(line)
        if record.get("log.logger") == "modelgate.access":
            pids[record["trace.id"]] = record["process.pid"]
    return pids


def call(
    base: str, token: str, path: str = "/v1/models", method: str = "GET"
) -> tuple[str, requests.Response]:
    trace = uuid.uuid4().hex
    with requests.Session() as session:  # a new connection: any worker may answer
        response = session.request(
            method,
            base + path,
            headers={"Authorization": f"Bearer {token}", "X-Trace-Id": trace},
            timeout=10,
        )
    return trace, response


def test_revoked_token_fails_at_once_in_the_other_worker(
    tmp_path, live_database, redis_url, redis_db
):
    token, session, token_id = mint_token(live_database)
    env = {
        "DATABASE_URL": live_database,
        "REDIS_URL": redis_url,
        "RATE_LIMIT_DEFAULT": "1000/minute",
        "JWT_SECRET_KEY": TestConfig().JWT_SECRET_KEY,  # the session was minted in-process
    }
    with gunicorn(env, tmp_path, workers=2) as base:
        with ThreadPoolExecutor(8) as pool:  # concurrent, so that both workers take some
            warm = list(pool.map(lambda _: call(base, token), range(60)))
        assert all(r.status_code == 200 for _, r in warm)
        session_token = session["Authorization"].removeprefix("Bearer ")
        revoke_trace, revoked = call(base, session_token, f"/v1/tokens/{token_id}", "DELETE")
        assert revoked.status_code == 204
        revoked_at = time.monotonic()
        after, sent_at = [], []
        for _ in range(20):
            sent_at.append(time.monotonic() - revoked_at)
            after.append(call(base, token))
        pids = pid_by_trace(tmp_path / "app.log")

    assert len({pids[trace] for trace, _ in warm}) == 2, "both workers should have served the token"
    assert all(r.status_code == 401 for _, r in after)
    others = [trace for trace, _ in after if pids[trace] != pids[revoke_trace]]
    assert others, "no call reached the other worker"
    first_other = next(i for i, (trace, _) in enumerate(after) if trace in others)
    # The other worker refused the token on a call made within a second of the revoke.
    assert sent_at[first_other] < 1.0, sent_at[first_other]


def test_exactly_the_limit_succeeds_across_two_workers(
    tmp_path, live_database, redis_url, redis_db
):
    token, _, _ = mint_token(live_database)
    env = {"DATABASE_URL": live_database, "REDIS_URL": redis_url, "RATE_LIMIT_DEFAULT": "10/minute"}
    with gunicorn(env, tmp_path, workers=2) as base, ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: call(base, token)[1], range(100)))
    statuses = [r.status_code for r in results]
    assert statuses.count(200) == 10 and statuses.count(429) == 90
    assert all(int(r.headers["Retry-After"]) > 0 for r in results if r.status_code == 429)
    assert all(r.json()["error"]["code"] == "rate_limited" for r in results if r.status_code == 429)


@pytest.fixture
def own_redis(tmp_path):
    """A Redis server of this test's own, which the test may stop and start."""
    port = free_port()
    command = [
        "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]

    def start() -> subprocess.Popen:
        process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL)
        client = redis.Redis(port=port, socket_connect_timeout=0.2)
        for _ in range(100):
            with contextlib.suppress(redis.RedisError):
                if client.ping():
                    break
            time.sleep(0.05)
        return process

    state = {"process": start()}
    yield port, state, start
    state["process"].terminate()
    state["process"].wait(10)


def test_calls_survive_redis_stopping_and_every_call_is_counted(tmp_path, live_database, own_redis):
    port, state, start = own_redis
    token, _, _ = mint_token(live_database)
    env = {
        "DATABASE_URL": live_database,
        "REDIS_URL": f"redis://127.0.0.1:{port}/0",
        "RATE_LIMIT_DEFAULT": "1000/minute",
    }
    statuses = []
    with gunicorn(env, tmp_path, workers=2) as base:
        statuses += [call(base, token)[1].status_code for _ in range(15)]
        state["process"].terminate()
        state["process"].wait(10)
        statuses += [call(base, token)[1].status_code for _ in range(15)]
        ready = requests.get(f"{base}/readyz", timeout=10)
        metrics = requests.get(f"{base}/metrics", timeout=10).text
        state["process"] = start()
        statuses += [call(base, token)[1].status_code for _ in range(10)]

    assert statuses == [200] * 40
    assert (
        ready.status_code == 503
        and ready.json()["error"]["details"]["checks"]["redis"] == "unreachable"
    )
    assert "rate_limit_storage_degraded 1.0" in metrics
    with psycopg.connect(_libpq(live_database)) as conn:
        recorded = conn.execute(
            "SELECT count(*) FROM inference_records WHERE status = 200"
        ).fetchone()[0]
    assert recorded == 40

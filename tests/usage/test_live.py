"""No answered call loses its usage row: a worker SIGKILLed right after answering, and
PostgreSQL down for a while (the rows arrive once it is back), under real gunicorn."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
import pytest
import requests

from tests.conftest import _libpq, migrate
from tests.services import free_port, gunicorn
from tests.tokens.test_live import call, mint_token, pid_by_trace

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _rows(database_url: str, traces: list[str]) -> list[str]:
    with psycopg.connect(_libpq(database_url)) as conn:
        found = conn.execute(
            "SELECT trace_id FROM inference_records WHERE trace_id = ANY(%s)", (traces,)
        ).fetchall()
    return [row[0] for row in found]


def _wait_for_rows(database_url: str, traces: list[str], timeout: float = 20.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = _rows(database_url, traces)
        if len(found) >= len(traces):
            return found
        time.sleep(0.2)
    return _rows(database_url, traces)


def test_a_worker_killed_right_after_answering_loses_no_row(
    tmp_path, live_database, redis_url, redis_db
):
    token, _, _ = mint_token(live_database)
    env = {
        "DATABASE_URL": live_database,
        "REDIS_URL": redis_url,
        "RATE_LIMIT_DEFAULT": "10000/minute",
        "USAGE_FLUSH_INTERVAL_MS": "1000",
    }
    with gunicorn(env, tmp_path, workers=2) as base:
        answered = [call(base, token)[0] for _ in range(30)]
        served_by = set(pid_by_trace(tmp_path / "app.log").values())
        for pid in served_by:  # killed at once, before their next flush
            os.kill(pid, signal.SIGKILL)
        found = _wait_for_rows(live_database, answered)  # new workers adopt their spools
    assert sorted(found) == sorted(answered)  # every answered call once: none lost, none twice


@pytest.fixture
def own_postgres():
    """A PostgreSQL server of this test's own, which it may stop and start."""
    if not (PG_BIN / "initdb").exists():
        pytest.skip("PostgreSQL server binaries not found")
    home = Path(tempfile.mkdtemp(prefix="modelgate-pg-"))  # not under pytest's root-only tmp
    data, port = home / "data", free_port()
    run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if run_as:
        shutil.chown(home, "postgres")
    subprocess.run([*run_as, PG_BIN / "initdb", "-D", data, "-A", "trust", "-U", "postgres"],
                   check=True, capture_output=True)  # fmt: skip
    ctl = [*run_as, PG_BIN / "pg_ctl", "-D", data, "-l", home / "log", "-w"]
    options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1 -c fsync=off"

    def start() -> None:
        subprocess.run([*ctl, "-o", options, "start"], check=True, capture_output=True)

    def stop() -> None:
        subprocess.run([*ctl, "-m", "fast", "stop"], check=True, capture_output=True)

    start()
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    migrate(url)
    yield url, start, stop
    subprocess.run([*ctl, "-m", "immediate", "stop"], capture_output=True)
    shutil.rmtree(home, ignore_errors=True)


def test_rows_wait_while_postgresql_is_down_and_arrive_once_it_is_back(
    tmp_path, own_postgres, redis_url, redis_db
):
    url, start, stop = own_postgres
    token, _, _ = mint_token(url)
    env = {
        "DATABASE_URL": url,
        "REDIS_URL": redis_url,
        "RATE_LIMIT_DEFAULT": "10000/minute",
        "USAGE_FLUSH_INTERVAL_MS": "200",
    }
    (tmp_path / "app").mkdir()
    with gunicorn(env, tmp_path / "app", workers=2) as base:
        # Every worker must have the token cached; a new connection goes to either worker,
        # but nothing makes the kernel share them out, so call until both have answered.
        before: list[str] = []
        for _ in range(300):
            before.append(call(base, token)[0])
            answered_by = set(pid_by_trace(tmp_path / "app" / "app.log").values())
            if len(before) >= 20 and len(answered_by) == 2:
                break
        assert len(answered_by) == 2, "one worker answered 300 calls in a row"
        stop()
        traces = [uuid.uuid4().hex for _ in range(20)]
        during = []
        for trace in traces:
            response = requests.get(
                f"{base}/v1/models",
                headers={"Authorization": f"Bearer {token}", "X-Trace-Id": trace},
                timeout=10,
            )
            during.append(response.status_code)
        ready = requests.get(f"{base}/readyz", timeout=10)
        time.sleep(1.0)  # several flushes fail meanwhile
        start()
        found = _wait_for_rows(url, before + traces)
    assert during == [200] * 20  # answered from the cache and the spool, without the database
    assert ready.status_code == 503
    assert sorted(found) == sorted(before + traces)

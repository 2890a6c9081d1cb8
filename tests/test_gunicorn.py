"""The service under real gunicorn with two workers: metrics and logs across processes."""

from __future__ import annotations

import json
import re
import shutil
from concurrent.futures import ThreadPoolExecutor

import requests

from api import create_app
from api.config import TestConfig
from api.extensions import db
from tests.auth.conftest import PASSWORD, make_verified_user
from tests.services import gunicorn
from tests.stack import gunicorn_workers, rss_kib

REQUESTS = 60


def _sample(metrics_text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in metrics_text.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match and ",".join(sorted(match.group(1).split(","))) == wanted:
            return float(match.group(2))
    return 0.0


def _get(url: str) -> int:
    with requests.Session() as session:  # a new connection each time spreads the workers
        return session.get(url, timeout=10).status_code


def test_two_workers_count_every_request_once_and_share_the_log_file(tmp_path, sqlite_template):
    env = {"DATABASE_URL": f"sqlite:///{sqlite_template}"}
    with gunicorn(env, tmp_path, workers=2) as base:
        baseline = requests.get(f"{base}/metrics", timeout=10).text
        before = _sample(
            baseline, "http_server_requests_total", method="GET", route="/healthz", status="200"
        )
        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(_get, [f"{base}/healthz"] * REQUESTS))
            statuses += list(pool.map(_get, [f"{base}/missing/1", f"{base}/missing/2"] * 5))
        assert statuses.count(200) == REQUESTS and statuses.count(404) == 10
        text = requests.get(f"{base}/metrics", timeout=10).text

    after = _sample(
        text, "http_server_requests_total", method="GET", route="/healthz", status="200"
    )
    assert after - before == REQUESTS
    assert (
        _sample(text, "http_server_requests_total", method="GET", route="<unmatched>", status="404")
        == 10
    )
    assert "/missing/1" not in text
    assert (
        _sample(
            text,
            "http_server_request_duration_seconds_count",
            method="GET",
            route="/healthz",
            status="200",
        )
        == after
    )

    lines = [json.loads(line) for line in (tmp_path / "app.log").read_text().splitlines()]
    access = [line for line in lines if line["log.logger"] == "modelgate.access"]
    healthz = [line for line in access if line["url.path"] == "/healthz"]
    assert len(healthz) >= REQUESTS


def test_a_worker_gives_back_the_memory_of_password_hashes(tmp_path, sqlite_template):
    """Each login's argon2 hash takes 19 MiB; no thread of the worker may keep it.

    (api/process/memory.py)

    glibc's default keeps it in each thread's arena: 8 logins at once would leave the
    worker up to 152 MiB larger, for good.
    """
    database = tmp_path / "app.db"
    shutil.copy(sqlite_template, database)
    app = create_app(TestConfig(SQLALCHEMY_DATABASE_URI=f"sqlite:///{database}"))
    make_verified_user(app, "hash@example.org")
    with app.app_context():
        db.engine.dispose()
    env = {
        "DATABASE_URL": f"sqlite:///{database}",
        "RATE_LIMIT_AUTH": "1000/minute",
        "GUNICORN_CMD_ARGS": f"--pid {tmp_path / 'gunicorn.pid'}",
    }
    body = {"email": "hash@example.org", "password": PASSWORD}

    def log_in(_: int) -> int:
        with requests.Session() as session:
            return session.post(f"{base}/v1/auth/login", json=body, timeout=30).status_code

    with gunicorn(env, tmp_path, workers=1) as base:
        master = int((tmp_path / "gunicorn.pid").read_text())
        (worker,) = gunicorn_workers(master)
        assert log_in(0) == 200  # the first hash: glibc maps it, then raises its threshold
        before = rss_kib(worker)
        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(log_in, range(32)))
        grown_mib = (rss_kib(worker) - before) / 1024

    assert statuses == [200] * 32
    assert grown_mib < 38, f"the worker kept {grown_mib:.0f} MiB after 32 logins"

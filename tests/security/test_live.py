"""Findings 3 and 11 under real gunicorn (two workers), PostgreSQL and Redis: one user cannot
starve the service, and single-use tokens stay single use under concurrent requests."""

from __future__ import annotations

import hashlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import requests

from api import create_app
from api.auth.models import EmailToken
from api.config import TestConfig
from api.db_types import utcnow
from api.extensions import db
from tests.auth.conftest import PASSWORD, make_verified_user
from tests.services import gunicorn
from tests.tokens.test_live import mint_token


def _reset_token(database_url: str, email: str) -> str:
    """A user with a live reset link in the database; returns the link's token."""
    app = create_app(TestConfig(SQLALCHEMY_DATABASE_URI=database_url))
    user_id = make_verified_user(app, email)
    token = "reset-token-" + "r" * 32
    with app.app_context():
        db.session.add(
            EmailToken(
                user_id=user_id,
                purpose="reset_password",
                token_hash=hashlib.sha256(token.encode()).hexdigest(),
                expires_at=utcnow() + timedelta(hours=1),
            )
        )
        db.session.commit()
        db.engine.dispose()
    return token


def _at_once(count: int, call) -> list[requests.Response]:
    barrier = threading.Barrier(count)

    def run(_: int) -> requests.Response:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def test_email_and_refresh_tokens_work_once_under_concurrency(
    tmp_path, live_database, redis_url, redis_db
):
    token = _reset_token(live_database, "race@example.org")
    env = {"DATABASE_URL": live_database, "REDIS_URL": redis_url, "RATE_LIMIT_AUTH": "1000/minute"}
    with gunicorn(env, tmp_path) as base:
        resets = _at_once(
            4,
            lambda: requests.post(
                f"{base}/v1/auth/reset-password",
                json={"token": token, "password": f"new passphrase {time.time_ns()}"},
                timeout=30,
            ),
        )
        assert sorted(r.status_code for r in resets) == [200, 422, 422, 422]

        # Refresh twice at once with one refresh cookie: one rotation wins.
        session = requests.Session()
        email = "race2@example.org"
        app = create_app(TestConfig(SQLALCHEMY_DATABASE_URI=live_database))
        make_verified_user(app, email)
        with app.app_context():
            db.engine.dispose()
        login = session.post(
            f"{base}/v1/auth/login", json={"email": email, "password": PASSWORD}, timeout=30
        )
        assert login.status_code == 200
        cookies = session.cookies.get_dict()
        headers = {"X-CSRF-TOKEN": cookies["mg_csrf"]}
        refreshes = _at_once(
            2,
            lambda: requests.post(
                f"{base}/v1/auth/refresh", cookies=cookies, headers=headers, timeout=30
            ),
        )
        assert sorted(r.status_code for r in refreshes) == [200, 401]


def test_one_user_cannot_starve_health_or_other_users(tmp_path, live_database, redis_url, redis_db):
    greedy, _, _ = mint_token(live_database)
    app = create_app(TestConfig(SQLALCHEMY_DATABASE_URI=live_database))
    make_verified_user(app, "polite@example.org")
    with app.app_context():
        db.engine.dispose()
    env = {
        "DATABASE_URL": live_database,
        "REDIS_URL": redis_url,
        "MODELS": "storyteller",
        "RATE_LIMIT_DEFAULT": "1000/minute",
    }
    with gunicorn(env, tmp_path) as base:
        polite = requests.post(  # another user, who only wants the model list
            f"{base}/v1/auth/login", json={"email": "polite@example.org", "password": PASSWORD}
        )
        assert polite.status_code == 200
        polite_headers = {"Authorization": f"Bearer {polite.json()['access_token']}"}
        headers = {"Authorization": f"Bearer {greedy}"}
        body = {"prompt": "Once upon a time", "max_tokens": 250, "temperature": 0}
        results: list[tuple[int, float, str | None]] = []

        def greedy_call(_: int) -> None:
            start = time.monotonic()
            response = requests.post(
                f"{base}/v1/completions", json=body, headers=headers, timeout=120
            )
            results.append(
                (
                    response.status_code,
                    time.monotonic() - start,
                    response.headers.get("Retry-After"),
                )
            )

        with ThreadPoolExecutor(20) as pool:
            futures = [pool.submit(greedy_call, i) for i in range(20)]
            time.sleep(0.5)  # the flood is in
            health, others = [], []
            for _ in range(5):
                start = time.monotonic()
                assert requests.get(f"{base}/healthz", timeout=30).status_code == 200
                health.append(time.monotonic() - start)
                start = time.monotonic()
                response = requests.get(f"{base}/v1/models", headers=polite_headers, timeout=30)
                assert response.status_code == 200
                others.append(time.monotonic() - start)
                time.sleep(0.1)
            for future in futures:
                future.result()
        statuses = [status for status, _, _ in results]
        assert statuses.count(200) <= 4 and statuses.count(200) >= 1, statuses
        refused = [(took, retry) for status, took, retry in results if status == 429]
        assert len(refused) == 20 - statuses.count(200), statuses
        assert all(retry and int(retry) >= 1 for _, retry in refused)
        assert max(took for took, _ in refused) < 2.0, refused  # refused at once, not queued
        assert max(health) < 1.0, health
        assert max(others) < 1.0, others

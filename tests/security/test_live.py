"""Findings under real gunicorn (two workers), PostgreSQL and Redis: one user cannot starve the
service, single-use tokens stay single use under concurrent requests (findings 3 and 11), and
two admins removing each other at once leave one (issue 22, finding 10)."""

from __future__ import annotations

import functools
import hashlib
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import requests
from sqlalchemy import select

from api import create_app
from api.auth.models import EmailToken, User
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


def _at_once(count: int, call: Callable[[], requests.Response]) -> list[requests.Response]:
    return _each_at_once([call] * count)


def _each_at_once(calls: Iterable[Callable[[], requests.Response]]) -> list[requests.Response]:
    """Make each call in a thread of its own, all released at the same moment."""
    calls = list(calls)
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], requests.Response]) -> requests.Response:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory, postgres_database, redis_url):
    """gunicorn (two workers) on the session database, for the account races below: started
    once for both (each test's live_database and redis_db empty the stores after it)."""
    env = {
        "DATABASE_URL": postgres_database,
        "REDIS_URL": redis_url,
        "RATE_LIMIT_AUTH": "1000/minute",
    }
    with gunicorn(env, tmp_path_factory.mktemp("auth-races")) as base:
        yield base


def test_email_and_refresh_tokens_work_once_under_concurrency(auth_server, live_database, redis_db):
    token = _reset_token(live_database, "race@example.org")
    base = auth_server
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


def _restore_admins(app, ids: list[int]) -> None:
    with app.app_context():
        for user_id in ids:
            user = db.session.get(User, user_id)
            user.role, user.disabled_at = "admin", None
        db.session.commit()


def _enabled_admins(app) -> int:
    with app.app_context():
        query = select(User.id).where(User.role == "admin", User.disabled_at.is_(None))
        return len(db.session.scalars(query).all())


def test_two_admins_removing_each_other_at_once_leave_one(auth_server, live_database, redis_db):
    app = create_app(TestConfig(SQLALCHEMY_DATABASE_URI=live_database))
    emails = ["a@example.org", "b@example.org"]
    ids = [make_verified_user(app, email, role="admin") for email in emails]
    refused = []
    base = auth_server
    for round_ in range(12):
        change = {"role": "user"} if round_ % 2 else {"disabled": True}
        _restore_admins(app, ids)
        sessions = [
            requests.post(
                f"{base}/v1/auth/login", json={"email": email, "password": PASSWORD}, timeout=30
            ).json()["access_token"]
            for email in emails
        ]
        answers = _each_at_once(
            functools.partial(
                requests.patch,
                f"{base}/v1/admin/users/{ids[1 - me]}",
                headers={"Authorization": f"Bearer {sessions[me]}"},
                json=change,
                timeout=30,
            )
            for me in range(2)
        )
        statuses = sorted(answer.status_code for answer in answers)
        assert _enabled_admins(app) == 1, (round_, change, statuses)
        # The one that lost: refused as the last admin, or (it came second) no longer one.
        assert statuses[0] == 200 and statuses[1] in (401, 403, 409), (round_, statuses)
        refused += [a.json()["error"]["code"] for a in answers if a.status_code != 200]
    with app.app_context():
        db.engine.dispose()
    assert "last_admin" in refused, refused  # the requests did overlap

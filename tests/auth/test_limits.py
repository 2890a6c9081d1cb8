"""Brute force: per-account login failures and per-IP limits, in real Redis.

Mail limits per address are in tests/security/test_lockout.py."""

from __future__ import annotations

from tests.auth.conftest import PASSWORD, make_verified_user


def limited_app(make_app, redis_url, **limits):
    return make_app(REDIS_URL=redis_url, RATELIMIT_STORAGE_URI=redis_url, **limits)


def test_failed_logins_lock_the_account_with_retry_after(make_app, redis_url, redis_db):
    app = limited_app(make_app, redis_url, LOGIN_FAILURE_LIMIT="3 per 15 minutes")
    make_verified_user(app, "lock@example.org")
    client = app.test_client()
    for _ in range(3):
        wrong = client.post(
            "/v1/auth/login", json={"email": "lock@example.org", "password": "wrong wrong wrong"}
        )
        assert wrong.status_code == 401
    blocked = client.post(
        "/v1/auth/login", json={"email": "lock@example.org", "password": PASSWORD}
    )
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) > 0
    assert blocked.get_json()["error"]["code"] == "rate_limited"
    assert redis_db.keys("*"), "the failures were not counted in Redis"


def test_successful_logins_do_not_count_as_failures(make_app, redis_url, redis_db):
    app = limited_app(make_app, redis_url, LOGIN_FAILURE_LIMIT="2 per 15 minutes")
    make_verified_user(app, "ok@example.org")
    client = app.test_client()
    for _ in range(4):
        assert (
            client.post(
                "/v1/auth/login", json={"email": "ok@example.org", "password": PASSWORD}
            ).status_code
            == 200
        )


def test_per_ip_limit_on_account_endpoints(make_app, redis_url, redis_db):
    app = limited_app(make_app, redis_url, RATE_LIMIT_AUTH="4/minute")
    client = app.test_client()
    statuses = [
        client.post("/v1/auth/forgot-password", json={"email": f"u{i}@example.org"}).status_code
        for i in range(6)
    ]
    assert statuses == [202] * 4 + [429] * 2

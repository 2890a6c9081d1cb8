"""With Redis unreachable, accounts keep working from the database and limits stay on."""

from __future__ import annotations

from tests.auth.conftest import PASSWORD, bearer, login, make_verified_user

DEAD_REDIS = "redis://127.0.0.1:1/0"


def test_login_token_checks_and_logout_work_without_redis(make_app, log_lines):
    app = make_app(
        REDIS_URL=DEAD_REDIS,
        RATELIMIT_STORAGE_URI=DEAD_REDIS,
        LOGIN_FAILURE_LIMIT="3 per 15 minutes",
    )
    make_verified_user(app, "nored@example.org")
    client = app.test_client()
    access = login(client, "nored@example.org")
    for _ in range(5):
        assert client.get("/v1/auth/me", headers=bearer(access)).status_code == 200
    assert client.post("/v1/auth/logout", headers=bearer(access)).status_code == 204
    assert client.get("/v1/auth/me", headers=bearer(access)).status_code == 401  # from the database

    # Login failures still lock the account, counted in this process's memory.
    for _ in range(3):
        client.post(
            "/v1/auth/login", json={"email": "nored@example.org", "password": "wrong wrong wrong"}
        )
    assert (
        client.post(
            "/v1/auth/login", json={"email": "nored@example.org", "password": PASSWORD}
        ).status_code
        == 429
    )

    # The condition is logged, not once per request.
    warnings = [line for line in log_lines() if line["message"].startswith("redis unavailable")]
    assert 1 <= len(warnings) <= 2
    fallback = [line for line in log_lines() if "falling back to in-memory" in line["message"]]
    assert len(fallback) <= 1  # Flask-Limiter logs the switch, not each request

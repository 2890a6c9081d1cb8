"""Finding 13: invalid credentials are limited per source; past the limit the address gets 429
before any lookup. Tokens that fail their checksum still cost nothing at all."""

from __future__ import annotations

from sqlalchemy import event

from api.extensions import db
from api.tokens.format import generate_token
from tests.auth.conftest import bearer
from tests.tokens.conftest import make_account


def test_forged_tokens_with_a_valid_checksum_are_limited_per_address(limited_app):
    app = limited_app(AUTH_FAILURE_LIMIT="5/minute", TRUSTED_PROXIES=1)
    account = make_account(app)
    real = account.mint()["token"]
    client = account.client
    attacker = {"X-Forwarded-For": "203.0.113.13"}
    statuses = [
        client.get("/v1/models", headers={**bearer(generate_token()), **attacker}).status_code
        for _ in range(5)
    ]
    assert statuses == [401] * 5
    with app.app_context():
        engine = db.engine
    queries: list[str] = []

    def record(conn, cursor, statement, *args):
        queries.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    blocked = [
        client.get("/v1/models", headers={**bearer(generate_token()), **attacker}) for _ in range(3)
    ]
    event.remove(engine, "before_cursor_execute", record)
    assert [r.status_code for r in blocked] == [429] * 3
    assert blocked[-1].get_json()["error"]["code"] == "too_many_auth_failures"
    assert int(blocked[-1].headers["Retry-After"]) > 0
    assert queries == []  # refused before any database lookup
    # Another address is not affected.
    other = {"X-Forwarded-For": "198.51.100.20"}
    assert client.get("/v1/models", headers={**bearer(real), **other}).status_code == 200


def test_forged_session_tokens_count_too(limited_app):
    app = limited_app(AUTH_FAILURE_LIMIT="3/minute")
    client = app.test_client()
    forged = bearer("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlLWZvcmdlZA")
    statuses = [client.get("/v1/models", headers=forged).status_code for _ in range(5)]
    assert statuses == [401, 401, 401, 429, 429]  # the fourth is refused before any check

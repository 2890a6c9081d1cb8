"""A mistyped token is refused on its checksum: no database query, no Redis command."""

from __future__ import annotations

import string

from sqlalchemy import event

from api.extensions import db
from tests.auth.conftest import bearer


def _commands(redis_db) -> int:
    stats = redis_db.info("commandstats")
    return sum(entry["calls"] for entry in stats.values())


def test_one_character_changes_are_refused_without_any_lookup(redis_account, redis_db):
    secret = redis_account.mint()["token"]
    client = redis_account.client
    assert client.get("/v1/models", headers=bearer(secret)).status_code == 200
    with redis_account.app.app_context():
        engine = db.engine
    queries: list[str] = []

    def record(conn, cursor, statement, *args):
        queries.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        for position in range(3, len(secret)):
            for replacement in (string.ascii_letters + string.digits)[:3]:
                if replacement == secret[position]:
                    continue
                forged = secret[:position] + replacement + secret[position + 1 :]
                before = _commands(redis_db)
                response = client.get("/v1/models", headers=bearer(forged))
                # The commandstats call itself is the only Redis command in between.
                assert _commands(redis_db) - before <= 1, forged
                assert response.status_code == 401
                assert response.get_json()["error"]["code"] == "invalid_token"
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert queries == []

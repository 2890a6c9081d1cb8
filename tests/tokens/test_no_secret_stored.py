"""The clear token is shown once: not in the list, the database, Redis or the logs."""

from __future__ import annotations

from sqlalchemy import text

from api.extensions import db
from tests.auth.conftest import bearer


def test_secret_appears_nowhere_after_creation(redis_account, redis_db, log_lines):
    account = redis_account
    created = account.mint()
    secret = created["token"]
    for _ in range(3):
        assert account.client.get("/v1/models", headers=bearer(secret)).status_code == 200

    listing = account.client.get("/v1/tokens", headers=account.session).get_data(as_text=True)
    assert secret not in listing and secret[7:-4] not in listing

    with account.app.app_context():
        dumped = []
        for table in ("api_tokens", "audit_events", "inference_records"):
            dumped += [
                str(tuple(row)) for row in db.session.execute(text(f"SELECT * FROM {table}"))
            ]
    assert dumped and not any(secret in row or secret[3:] in row for row in dumped)

    keys = redis_db.keys("*")
    assert any("user:" in key for key in keys)  # the budget is counted in Redis...
    values = [str(redis_db.dump(key)) for key in keys]
    assert not any(secret in item or secret[3:] in item for item in keys + values)  # ...not it

    logged = "\n".join(str(line) for line in log_lines())
    assert "GET /v1/models 200" in logged and secret not in logged and secret[3:] not in logged

"""What the usage pages break figures down by: model, batch lines apart, and whose they are."""

from __future__ import annotations

import csv
import io

from api.extensions import db
from api.usage.models import InferenceRecord
from tests.auth.conftest import bearer, login, make_verified_user
from tests.tokens.conftest import make_account


def _batch_lines(app, user_id: int, token_id: int, statuses: list[int]) -> None:
    """Rows as the batch runner meters them: one per line, under the creating token."""
    with app.app_context():
        db.session.add_all(
            InferenceRecord(
                user_id=user_id,
                token_id=token_id,
                endpoint="batch_embeddings",
                model="all-minilm-l6-v2",
                status=status,
                tokens_in=5,
                latency_ms=1.0,
            )
            for status in statuses
        )
        db.session.commit()


def test_rows_name_the_model_and_keep_batch_lines_apart(app):
    account = make_account(app)
    token = account.mint("nightly")
    account.client.get("/v1/models", headers=bearer(token["token"]))
    _batch_lines(app, account.user_id, token["id"], [200, 200, 400])

    rows = account.client.get("/v1/usage?days=1", headers=account.session).get_json()["data"]
    seen = {(row["endpoint"], row["model"]): row for row in rows}
    assert set(seen) == {("models", None), ("batch_embeddings", "all-minilm-l6-v2")}
    batch = seen[("batch_embeddings", "all-minilm-l6-v2")]
    assert (batch["requests"], batch["errors"], batch["tokens_in"]) == (3, 1, 15)
    assert batch["token_id"] == token["id"] and batch["email"] == "dev@example.org"

    table = account.client.get("/v1/usage.csv?days=1", headers=account.session)
    header = next(csv.reader(io.StringIO(table.get_data(as_text=True))))
    assert header[:6] == ["date", "user_id", "email", "token_id", "endpoint", "model"]


def test_admin_usage_names_each_user_by_email(make_app):
    app = make_app(RATE_LIMIT_DEFAULT="1/minute")
    alice = make_account(app, "alice@example.org")
    token = alice.mint()["token"]
    statuses = [alice.client.get("/v1/models", headers=bearer(token)).status_code for _ in "ab"]
    assert statuses == [200, 429]
    make_verified_user(app, "root@example.org", role="admin")
    admin = bearer(login(app.test_client(), "root@example.org"))
    answer = app.test_client().get("/v1/admin/usage?days=1", headers=admin).get_json()
    assert {row["email"] for row in answer["data"]} == {"alice@example.org"}
    assert [row["email"] for row in answer["rate_limited"]] == ["alice@example.org"]


def test_handler_model_rows_carry_their_units(app):
    account = make_account(app)
    with app.app_context():
        db.session.add_all(
            InferenceRecord(
                user_id=account.user_id,
                endpoint="predict",
                model="ocr-en",
                status=200,
                units=units,
                latency_ms=1.0,
            )
            for units in (1, 3)
        )
        db.session.commit()
    rows = account.client.get("/v1/usage?days=1", headers=account.session).get_json()["data"]
    assert [(row["model"], row["requests"], row["units"]) for row in rows] == [("ocr-en", 2, 4)]
    table = account.client.get("/v1/usage.csv?days=1", headers=account.session)
    [row] = csv.DictReader(io.StringIO(table.get_data(as_text=True)))
    assert (row["model"], row["units"]) == ("ocr-en", "4")

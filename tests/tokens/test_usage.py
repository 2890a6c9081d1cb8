"""Usage: every metered call recorded once; summaries per day, token and endpoint."""

from __future__ import annotations

import csv
import io

from sqlalchemy import func, select

from api.extensions import db
from api.usage.models import InferenceRecord
from tests.auth.conftest import bearer, login, make_verified_user
from tests.tokens.conftest import make_account


def test_each_call_is_one_record_with_trace_id_and_status(make_app):
    app = make_app(RATE_LIMIT_DEFAULT="4/minute")
    account = make_account(app)
    token = account.mint()
    statuses = [
        account.client.get(
            "/v1/models", headers={**bearer(token["token"]), "X-Trace-Id": f"call-{i}"}
        ).status_code
        for i in range(3)
    ]
    session_call = account.client.get("/v1/models", headers=account.session)
    assert statuses == [200, 200, 200] and session_call.status_code == 200
    # The session and the token drew on one budget: the user's.
    assert account.client.get("/v1/models", headers=bearer(token["token"])).status_code == 429
    with app.app_context():
        rows = db.session.scalars(select(InferenceRecord).order_by(InferenceRecord.id)).all()
    assert [(r.token_id, r.status, r.trace_id) for r in rows] == [
        (token["id"], 200, "call-0"),
        (token["id"], 200, "call-1"),
        (token["id"], 200, "call-2"),
        (None, 200, rows[3].trace_id),
    ]
    assert all(
        r.endpoint == "models" and r.latency_ms > 0 and r.user_id == account.user_id for r in rows
    )


def test_usage_summary_filter_and_csv(account):
    first, second = account.mint("first"), account.mint("second")
    for _ in range(3):
        account.client.get("/v1/models", headers=bearer(first["token"]))
    account.client.get("/v1/models", headers=bearer(second["token"]))
    unauthenticated = account.client.get("/v1/models", headers=bearer("mg_nonsense"))
    assert unauthenticated.status_code == 401  # not metered: nobody to bill

    rows = account.client.get("/v1/usage?days=7", headers=account.session).get_json()["data"]
    by_token = {row["token_id"]: row for row in rows}
    assert by_token[first["id"]]["requests"] == 3 and by_token[second["id"]]["requests"] == 1
    assert by_token[first["id"]]["errors"] == 0 and by_token[first["id"]]["endpoint"] == "models"

    only = account.client.get(
        f"/v1/usage?token={second['id']}", headers=account.session
    ).get_json()["data"]
    assert [row["token_id"] for row in only] == [second["id"]]

    response = account.client.get("/v1/usage.csv?days=7", headers=account.session)
    assert response.mimetype == "text/csv"
    table = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert sorted(int(row["requests"]) for row in table) == [1, 3]

    bad = account.client.get("/v1/usage?days=0", headers=account.session)
    assert bad.status_code == 400 and "days" in bad.get_json()["error"]["details"]


def test_users_see_only_their_own_usage_and_admins_see_all(app):
    alice, bob = make_account(app, "alice@example.org"), make_account(app, "bob@example.org")
    alice.client.get("/v1/models", headers=bearer(alice.mint()["token"]))
    bob.client.get("/v1/models", headers=bearer(bob.mint()["token"]))
    mine = alice.client.get("/v1/usage", headers=alice.session).get_json()["data"]
    assert {row["user_id"] for row in mine} == {alice.user_id}

    make_verified_user(app, "root@example.org", role="admin")
    admin = bearer(login(app.test_client(), "root@example.org"))
    everyone = app.test_client().get("/v1/admin/usage", headers=admin).get_json()["data"]
    assert {row["user_id"] for row in everyone} == {alice.user_id, bob.user_id}
    one = (
        app.test_client()
        .get(f"/v1/admin/usage?user={bob.user_id}", headers=admin)
        .get_json()["data"]
    )
    assert {row["user_id"] for row in one} == {bob.user_id}
    assert alice.client.get("/v1/admin/usage", headers=alice.session).status_code == 403


def test_admin_sets_a_users_rate_limit(app):
    account = make_account(app)
    make_verified_user(app, "root@example.org", role="admin")
    admin_client = app.test_client()
    admin = bearer(login(admin_client, "root@example.org"))
    bad = admin_client.patch(
        f"/v1/admin/users/{account.user_id}", headers=admin, json={"rate_limit": "lots"}
    )
    assert bad.status_code == 400 and "rate_limit" in bad.get_json()["error"]["details"]
    ok = admin_client.patch(
        f"/v1/admin/users/{account.user_id}", headers=admin, json={"rate_limit": "2/minute"}
    )
    assert ok.status_code == 200 and ok.get_json()["rate_limit"] == "2/minute"

    token = account.mint()["token"]
    responses = [account.client.get("/v1/models", headers=bearer(token)) for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert responses[0].headers["X-RateLimit-Limit"] == "2"
    assert int(responses[2].headers["Retry-After"]) > 0

    admin_client.patch(
        f"/v1/admin/users/{account.user_id}", headers=admin, json={"rate_limit": None}
    )
    fresh = account.mint("fresh")["token"]  # a new key: the default limit applies again
    assert (
        account.client.get("/v1/models", headers=bearer(fresh)).headers["X-RateLimit-Limit"] == "60"
    )
    with app.app_context():  # the 429 is counted, not stored as a row of its own
        assert db.session.scalar(select(func.count()).select_from(InferenceRecord)) == 3

"""Finding 4: one budget per user across tokens and sessions; minting is limited; 429s do not
grow the database."""

from __future__ import annotations

from sqlalchemy import func, select

from api.extensions import db
from api.usage.models import InferenceRecord, RejectedCalls
from tests.auth.conftest import bearer
from tests.tokens.conftest import make_account


def test_revoking_and_minting_does_not_reset_the_budget(limited_app):
    account = make_account(limited_app(RATE_LIMIT_DEFAULT="5/minute"))
    client = account.client
    for _ in range(3):  # three rounds of: mint, spend, revoke
        token = account.mint()
        statuses = [
            client.get("/v1/models", headers=bearer(token["token"])).status_code for _ in range(5)
        ]
        client.delete(f"/v1/tokens/{token['id']}", headers=account.session)
        if _ == 0:
            assert statuses == [200] * 5
        else:
            assert statuses == [429] * 5  # the fresh token drew on the spent budget
    assert client.get("/v1/models", headers=account.session).status_code == 429


def test_token_creation_is_limited(limited_app):
    account = make_account(limited_app(TOKEN_CREATE_LIMIT="3/hour"))
    for i in range(3):
        account.mint(f"t{i}")
    fourth = account.client.post(
        "/v1/tokens", headers=account.session, json={"name": "t4", "scopes": ["embed"]}
    )
    assert fourth.status_code == 429 and int(fourth.headers["Retry-After"]) > 0


def test_a_token_may_have_a_lower_limit_of_its_own(limited_app):
    account = make_account(limited_app(RATE_LIMIT_DEFAULT="100/minute"))
    slow = account.mint("slow", rate_limit="2/minute")
    assert slow["rate_limit"] == "2/minute"
    statuses = [
        account.client.get("/v1/models", headers=bearer(slow["token"])).status_code
        for _ in range(3)
    ]
    assert statuses == [200, 200, 429]
    other = account.mint("other")  # the user still has budget through another token
    assert account.client.get("/v1/models", headers=bearer(other["token"])).status_code == 200
    bad = account.client.post(
        "/v1/tokens",
        headers=account.session,
        json={"name": "x", "scopes": ["embed"], "rate_limit": "lots"},
    )
    assert bad.status_code == 400 and "rate_limit" in bad.get_json()["error"]["details"]


def test_rejected_calls_are_counted_not_stored_one_by_one(limited_app):
    app = limited_app(RATE_LIMIT_DEFAULT="2/minute")
    account = make_account(app)
    token = account.mint()["token"]
    statuses = [
        account.client.get("/v1/models", headers=bearer(token)).status_code for _ in range(60)
    ]
    assert statuses.count(200) == 2 and statuses.count(429) == 58
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(InferenceRecord)) == 2
        rows = db.session.scalars(select(RejectedCalls)).all()
        assert [(row.endpoint, row.count) for row in rows] == [("models", 58)]
    usage = account.client.get("/v1/usage?days=1", headers=account.session).get_json()
    assert [(row["endpoint"], row["count"]) for row in usage["rate_limited"]] == [("models", 58)]
    assert sum(row["requests"] for row in usage["data"]) == 2

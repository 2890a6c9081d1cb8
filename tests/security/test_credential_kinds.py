"""Findings 1 and 2: an API token cannot act on the account, hold admin powers, or read beyond
its scopes. Account, token and admin routes take a login session only."""

from __future__ import annotations

import pytest

from api.auth.models import User
from api.extensions import db
from api.usage.service import save_history
from tests.auth.conftest import PASSWORD, bearer, login, make_verified_user
from tests.tokens.conftest import make_account

ACCOUNT_ROUTES = [
    ("GET", "/v1/auth/me", None),
    ("PATCH", "/v1/auth/me", {"name": "Mallory"}),
    ("POST", "/v1/auth/change-password", {"current_password": "guess", "new_password": "x" * 20}),
    ("POST", "/v1/auth/logout", None),
    ("GET", "/v1/tokens", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ACCOUNT_ROUTES)
def test_an_api_token_cannot_act_on_the_account(account, method, path, body):
    token = account.mint(scopes=["embed"])["token"]
    response = account.client.open(path, method=method, json=body, headers=bearer(token))
    assert response.status_code == 403, response.get_json()
    assert response.get_json()["error"]["code"] == "session_required"
    # The same call with the login session works (logout last: it ends the session).
    with_session = account.client.open(path, method=method, json=body, headers=account.session)
    assert with_session.status_code < 500


def test_change_password_wrong_guesses_are_limited_like_login(limited_app):
    app = limited_app(LOGIN_FAILURE_LIMIT="3 per 15 minutes")
    account = make_account(app)
    guess = {"current_password": "not the password", "new_password": "a brand new passphrase"}
    statuses = [
        account.client.post("/v1/auth/change-password", json=guess, headers=account.session)
        for _ in range(3)
    ]
    assert [r.status_code for r in statuses] == [422] * 3
    assert statuses[0].get_json()["error"]["code"] == "wrong_password"
    assert "current_password" in statuses[0].get_json()["error"]["details"]
    right = {"current_password": PASSWORD, "new_password": "a brand new passphrase"}
    blocked = account.client.post("/v1/auth/change-password", json=right, headers=account.session)
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) > 0
    # They share login's counter: logging in from the same address is blocked too.
    login_try = account.client.post(
        "/v1/auth/login", json={"email": "dev@example.org", "password": PASSWORD}
    )
    assert login_try.status_code == 429


def test_an_admins_api_token_has_no_admin_power(app):
    admin = make_account(app, "root@example.org")
    with app.app_context():
        db.session.get(User, admin.user_id).role = "admin"
        db.session.commit()
    victim_id = make_verified_user(app, "victim@example.org")
    token = admin.mint(scopes=["embed"])["token"]
    for method, path, body in [
        ("GET", "/v1/admin/users", None),
        ("GET", f"/v1/admin/users/{victim_id}", None),
        ("PATCH", f"/v1/admin/users/{victim_id}", {"role": "admin"}),
        ("GET", "/v1/admin/usage", None),
    ]:
        response = admin.client.open(path, method=method, json=body, headers=bearer(token))
        assert response.status_code == 403, (path, response.get_json())
        assert response.get_json()["error"]["code"] == "session_required"
    with app.app_context():
        assert db.session.get(User, victim_id).role == "user"
    # The admin's session keeps its powers.
    session = bearer(login(admin.client, "root@example.org"))
    assert admin.client.get("/v1/admin/users", headers=session).status_code == 200


def _story(app, user_id: int, token_id: int | None, text: str) -> int:
    with app.app_context():
        entry = save_history(
            user_id=user_id,
            token_id=token_id,
            model="storyteller",
            prompt="Once",
            completion=text,
            finish_reason="length",
            prompt_tokens=1,
            completion_tokens=3,
            trace_id=None,
        )
        return entry.id


def test_history_and_usage_take_their_scopes(account):
    teller = account.mint("teller", scopes=["generate"])
    other_teller = account.mint("other", scopes=["generate"])
    embedder = account.mint("embedder", scopes=["embed"])
    reader = account.mint("reader", scopes=["usage"])
    mine = _story(account.app, account.user_id, teller["id"], "a story of the teller")
    client = account.client

    # An embed-only token neither reads nor deletes stories.
    for method in ("GET", "DELETE"):
        path = "/v1/history" if method == "GET" else f"/v1/history/{mine}"
        response = client.open(path, method=method, headers=bearer(embedder["token"]))
        assert response.status_code == 403
        assert response.get_json()["error"]["code"] == "insufficient_scope"

    # Another generate token sees none of the teller's stories and cannot delete them.
    seen = client.get("/v1/history", headers=bearer(other_teller["token"])).get_json()["data"]
    assert seen == []
    gone = client.delete(f"/v1/history/{mine}", headers=bearer(other_teller["token"]))
    assert gone.status_code == 404

    # The teller sees its own; the login session sees every story of the account.
    own = client.get("/v1/history", headers=bearer(teller["token"])).get_json()["data"]
    assert [entry["id"] for entry in own] == [mine]
    assert [e["id"] for e in client.get("/v1/history", headers=account.session).json["data"]] == [
        mine
    ]

    # Usage needs the usage scope.
    assert client.get("/v1/usage", headers=bearer(embedder["token"])).status_code == 403
    assert client.get("/v1/usage.csv", headers=bearer(teller["token"])).status_code == 403
    assert client.get("/v1/usage", headers=bearer(reader["token"])).status_code == 200

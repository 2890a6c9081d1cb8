"""Minting, listing, renaming, revoking and using API tokens."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import event, select, text

from api.access.security import authenticate
from api.audit.models import AuditEvent
from api.db_types import utcnow
from api.extensions import db
from api.tokens.format import has_valid_checksum
from api.tokens.models import ApiToken
from tests.auth.conftest import bearer
from tests.tokens.conftest import make_account


def test_token_shape_and_checksum(account):
    created = account.mint()
    secret = created["token"]
    assert re.fullmatch(r"mg_[0-9A-Za-z]{46}", secret) and has_valid_checksum(secret)
    assert created["prefix"] == secret[:7] and created["last_four"] == secret[-4:]
    assert created["scopes"] == ["batch", "embed", "generate"]


def test_list_rename_revoke_and_audit(account):
    first = account.mint("first", expires_in_days=None)
    account.mint("second", scopes=["embed"], expires_in_days=7)
    listing = account.client.get("/v1/tokens", headers=account.session).get_json()["data"]
    assert [t["name"] for t in listing] == ["second", "first"]
    assert listing[0]["expires_at"] is not None and listing[1]["expires_at"] is None
    assert all("token" not in t and "token_hash" not in t for t in listing)

    renamed = account.client.patch(
        f"/v1/tokens/{first['id']}", headers=account.session, json={"name": "renamed"}
    )
    assert renamed.status_code == 200 and renamed.get_json()["name"] == "renamed"
    assert account.client.get("/v1/models", headers=bearer(first["token"])).status_code == 200
    assert (
        account.client.delete(f"/v1/tokens/{first['id']}", headers=account.session).status_code
        == 204
    )
    response = account.client.get("/v1/models", headers=bearer(first["token"]))
    assert response.status_code == 401 and response.get_json()["error"]["code"] == "invalid_token"
    revoked = account.client.get("/v1/tokens", headers=account.session).get_json()["data"][1]
    assert revoked["revoked_at"] is not None  # listed, for the record
    # ...but gone for everything else: renaming or revoking it again is a 404.
    for method, body in (("PATCH", {"name": "again"}), ("DELETE", None)):
        gone = account.client.open(
            f"/v1/tokens/{first['id']}", method=method, json=body, headers=account.session
        )
        assert gone.status_code == 404

    with account.app.app_context():
        actions = list(db.session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))
    assert actions.count("token_create") == 2
    assert "token_rename" in actions and "token_revoke" in actions


def test_tokens_of_others_are_not_found(app):
    alice, bob = make_account(app, "alice@example.org"), make_account(app, "bob@example.org")
    token = alice.mint()
    assert bob.client.delete(f"/v1/tokens/{token['id']}", headers=bob.session).status_code == 404
    assert (
        bob.client.patch(
            f"/v1/tokens/{token['id']}", headers=bob.session, json={"name": "x"}
        ).status_code
        == 404
    )
    assert alice.client.get("/v1/models", headers=bearer(token["token"])).status_code == 200


def test_api_tokens_cannot_manage_tokens(account):
    token = account.mint()["token"]
    response = account.client.get("/v1/tokens", headers=bearer(token))
    assert (
        response.status_code == 403 and response.get_json()["error"]["code"] == "session_required"
    )


def test_at_most_twenty_live_tokens(make_app):
    account = make_account(make_app(TOKEN_CREATE_LIMIT="100/hour"))
    tokens = [account.mint(f"t{i}") for i in range(20)]
    over = account.client.post(
        "/v1/tokens", headers=account.session, json={"name": "21", "scopes": ["embed"]}
    )
    assert over.status_code == 409 and over.get_json()["error"]["code"] == "token_limit_reached"
    account.client.delete(f"/v1/tokens/{tokens[0]['id']}", headers=account.session)
    account.mint("21")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"scopes": ["embed"]}, "name"),
        ({"name": "", "scopes": ["embed"]}, "name"),
        ({"name": "x" * 101, "scopes": ["embed"]}, "name"),
        ({"name": "x"}, "scopes"),
        ({"name": "x", "scopes": []}, "scopes"),
        ({"name": "x", "scopes": ["admin"]}, "scopes"),
        ({"name": "x", "scopes": ["embed"], "expires_in_days": 0}, "expires_in_days"),
        ({"name": "x", "scopes": ["embed"], "expires_in_days": 366}, "expires_in_days"),
        ({"name": "x", "scopes": ["embed"], "expires_in_days": "soon"}, "expires_in_days"),
    ],
)
def test_bad_token_requests_name_the_field(account, body, field):
    response = account.client.post("/v1/tokens", headers=account.session, json=body)
    assert response.status_code == 400
    assert field in response.get_json()["error"]["details"]


def test_expired_token_is_401(account):
    created = account.mint(expires_in_days=1)
    with account.app.app_context():
        token = db.session.get(ApiToken, created["id"])
        token.expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    response = account.client.get("/v1/models", headers=bearer(created["token"]))
    assert response.status_code == 401 and response.get_json()["error"]["code"] == "token_expired"


def test_disabled_users_tokens_stop_at_once(account):
    token = account.mint()["token"]
    assert account.client.get("/v1/models", headers=bearer(token)).status_code == 200
    with account.app.app_context():
        db.session.execute(text("UPDATE users SET disabled_at = CURRENT_TIMESTAMP"))
        db.session.commit()
    assert account.client.get("/v1/models", headers=bearer(token)).status_code == 401


def test_scope_mismatch_is_403(app):
    @app.get("/v1/test-generate")
    @authenticate(scope="generate")
    def needs_generate():
        return {"ok": True}

    account = make_account(app)
    embed_only = account.mint(scopes=["embed"])["token"]
    both = account.mint(scopes=["embed", "generate"])["token"]
    response = account.client.get("/v1/test-generate", headers=bearer(embed_only))
    assert response.status_code == 403
    assert response.get_json()["error"]["details"] == {"required_scope": "generate"}
    assert account.client.get("/v1/test-generate", headers=bearer(both)).status_code == 200
    assert account.client.get("/v1/test-generate", headers=account.session).status_code == 200


def test_last_used_is_written_at_most_once_a_minute(account):
    created = account.mint()
    with account.app.app_context():
        engine = db.engine
    updates: list[str] = []

    def count(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("UPDATE API_TOKENS"):
            updates.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        for _ in range(5):
            assert (
                account.client.get("/v1/models", headers=bearer(created["token"])).status_code
                == 200
            )
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(updates) == 1
    listing = account.client.get("/v1/tokens", headers=account.session).get_json()["data"]
    assert listing[0]["last_used_at"] is not None

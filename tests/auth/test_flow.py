"""The whole account life, through real SMTP and real Redis."""

from __future__ import annotations

from sqlalchemy import select

from api.audit.models import AuditEvent
from api.extensions import db
from tests.auth.conftest import PASSWORD, bearer, body_text, link_token, login, register_and_verify

NEW_PASSWORD = "a completely different passphrase"


def refresh(client, csrf: str | None = None):
    cookie = client.get_cookie("mg_csrf", path="/")
    headers = {"X-CSRF-TOKEN": csrf or (cookie.value if cookie else "")}
    return client.post("/v1/auth/refresh", headers=headers)


def test_register_verify_login_refresh_reuse_reset(mail_app, mailbox):
    client = mail_app.test_client()
    address = "ada@example.org"

    # Register: the email arrives at the SMTP server with a link built from FRONTEND_URL.
    assert (
        client.post(
            "/v1/auth/register", json={"email": address, "password": PASSWORD, "name": "Ada"}
        ).status_code
        == 202
    )
    message = mailbox.wait_for(address, "Confirm")
    assert "https://app.example.test/verify-email?token=" in body_text(message)
    assert message.get_body(preferencelist=("html",)) is not None
    token = link_token(message)

    # Unverified login is refused with its own code; verification works once.
    response = client.post("/v1/auth/login", json={"email": address, "password": PASSWORD})
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "email_not_verified"
    assert client.post("/v1/auth/verify-email", json={"token": token}).status_code == 200
    again = client.post("/v1/auth/verify-email", json={"token": token})
    assert again.status_code == 422 and again.get_json()["error"]["details"]["token"]

    # Login, me, refresh (new cookie), replay of the old cookie kills the family.
    access = login(client, address)
    me = client.get("/v1/auth/me", headers=bearer(access)).get_json()
    assert me["email"] == address and me["name"] == "Ada" and me["email_verified"] is True
    old_refresh = client.get_cookie("mg_refresh", path="/v1/auth").value
    old_csrf = client.get_cookie("mg_csrf", path="/").value
    rotated = refresh(client)
    assert rotated.status_code == 200
    new_access = rotated.get_json()["access_token"]
    assert client.get_cookie("mg_refresh", path="/v1/auth").value != old_refresh
    assert client.get("/v1/auth/me", headers=bearer(new_access)).status_code == 200

    client.set_cookie("mg_refresh", old_refresh, path="/v1/auth")
    replay = refresh(client, csrf=old_csrf)
    assert replay.status_code == 401
    assert replay.get_json()["error"]["code"] == "refresh_token_reused"
    for token_ in (access, new_access):
        dead = client.get("/v1/auth/me", headers=bearer(token_))
        assert dead.status_code == 401 and dead.get_json()["error"]["code"] == "session_revoked"
    assert refresh(client).status_code == 401

    # Log in again, then forgot-password: reset from the email ends the old sessions.
    second = login(client, address)
    other_device = mail_app.test_client()
    third = login(other_device, address)
    assert client.post("/v1/auth/forgot-password", json={"email": address}).status_code == 202
    reset_token = link_token(mailbox.wait_for(address, "Reset"))
    reset = client.post(
        "/v1/auth/reset-password", json={"token": reset_token, "password": NEW_PASSWORD}
    )
    assert reset.status_code == 200
    for token_ in (second, third):
        assert client.get("/v1/auth/me", headers=bearer(token_)).status_code == 401
    old_login = client.post("/v1/auth/login", json={"email": address, "password": PASSWORD})
    assert old_login.status_code == 401
    login(client, address, NEW_PASSWORD)
    twice = client.post(
        "/v1/auth/reset-password", json={"token": reset_token, "password": "yet another passphrase"}
    )
    assert twice.status_code == 422 and twice.get_json()["error"]["code"] == "invalid_token"

    with mail_app.app_context():
        actions = [e.action for e in db.session.scalars(select(AuditEvent).order_by(AuditEvent.id))]
        events = db.session.scalars(select(AuditEvent)).all()
    for action in ("register", "verify_email", "login", "refresh_reuse", "password_reset"):
        assert action in actions
    assert all(e.trace_id and e.ip == "127.0.0.1" for e in events)


def test_registering_a_known_address_mails_the_owner(mail_app, mailbox):
    client = mail_app.test_client()
    register_and_verify(client, mailbox, "bob@example.org")
    response = client.post(
        "/v1/auth/register",
        json={"email": "BOB@example.org", "password": "another good passphrase"},
    )
    assert response.status_code == 202
    message = mailbox.wait_for("bob@example.org", "already have")
    assert "forgot-password" in body_text(message)
    assert login(client, "bob@example.org")  # the password did not change


def test_resend_verification_sends_a_working_link(mail_app, mailbox):
    client = mail_app.test_client()
    client.post("/v1/auth/register", json={"email": "cy@example.org", "password": PASSWORD})
    mailbox.wait_for("cy@example.org", "Confirm")
    assert (
        client.post("/v1/auth/resend-verification", json={"email": "cy@example.org"}).status_code
        == 202
    )
    token = link_token(mailbox.wait_for("cy@example.org", "Confirm"))
    assert client.post("/v1/auth/verify-email", json={"token": token}).status_code == 200
    login(client, "cy@example.org")


def test_logout_ends_access_and_refresh(mail_app, mailbox):
    client = mail_app.test_client()
    register_and_verify(client, mailbox, "dee@example.org")
    access = login(client, "dee@example.org")
    csrf = client.get_cookie("mg_csrf", path="/").value
    refresh_cookie = client.get_cookie("mg_refresh", path="/v1/auth").value
    assert client.post("/v1/auth/logout", headers=bearer(access)).status_code == 204
    assert client.get("/v1/auth/me", headers=bearer(access)).status_code == 401
    client.set_cookie("mg_refresh", refresh_cookie, path="/v1/auth")
    assert refresh(client, csrf).status_code == 401


def test_sign_out_everywhere_ends_every_session_but_not_api_tokens(mail_app, mailbox):
    client, phone = mail_app.test_client(), mail_app.test_client()
    register_and_verify(client, mailbox, "fay@example.org")
    mine, theirs = login(client, "fay@example.org"), login(phone, "fay@example.org")
    minted = client.post(
        "/v1/tokens", headers=bearer(mine), json={"name": "ci", "scopes": ["usage"]}
    )
    api_token = minted.get_json()["token"]
    assert client.post("/v1/auth/logout-all", headers=bearer(mine)).status_code == 204
    for access in (mine, theirs):
        assert client.get("/v1/auth/me", headers=bearer(access)).status_code == 401
    assert refresh(phone).status_code == 401
    assert client.get("/v1/usage", headers=bearer(api_token)).status_code == 200
    with mail_app.app_context():
        events = list(
            db.session.scalars(select(AuditEvent.details).where(AuditEvent.action == "logout_all"))
        )
    assert events == [{"count": 2}]


def test_change_password_keeps_this_session_and_ends_the_others(mail_app, mailbox):
    client, other = mail_app.test_client(), mail_app.test_client()
    register_and_verify(client, mailbox, "eve@example.org")
    mine, theirs = login(client, "eve@example.org"), login(other, "eve@example.org")
    wrong = client.post(
        "/v1/auth/change-password",
        headers=bearer(mine),
        json={"current_password": "not my password!", "new_password": NEW_PASSWORD},
    )
    assert wrong.status_code == 422 and "current_password" in wrong.get_json()["error"]["details"]
    weak = client.post(
        "/v1/auth/change-password",
        headers=bearer(mine),
        json={"current_password": PASSWORD, "new_password": "short"},
    )
    assert weak.status_code == 400 and "new_password" in weak.get_json()["error"]["details"]
    ok = client.post(
        "/v1/auth/change-password",
        headers=bearer(mine),
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert ok.status_code == 200
    assert client.get("/v1/auth/me", headers=bearer(mine)).status_code == 200
    assert other.get("/v1/auth/me", headers=bearer(theirs)).status_code == 401


def test_refresh_needs_the_csrf_header(mail_app, mailbox):
    client = mail_app.test_client()
    register_and_verify(client, mailbox, "fay@example.org")
    login(client, "fay@example.org")
    response = client.post("/v1/auth/refresh")
    assert response.status_code == 401 and response.get_json()["error"]["trace_id"]
    assert refresh(client, csrf="forged").status_code == 401
    assert refresh(client).status_code == 200


def test_patch_me_changes_the_name(mail_app, mailbox):
    client = mail_app.test_client()
    register_and_verify(client, mailbox, "gus@example.org")
    access = login(client, "gus@example.org")
    response = client.patch("/v1/auth/me", headers=bearer(access), json={"name": "Gus"})
    assert response.status_code == 200 and response.get_json()["name"] == "Gus"
    too_long = client.patch("/v1/auth/me", headers=bearer(access), json={"name": "x" * 101})
    assert too_long.status_code == 400 and "name" in too_long.get_json()["error"]["details"]

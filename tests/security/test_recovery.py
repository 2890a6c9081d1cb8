"""Finding 12: a password reset revokes the account's API tokens and says so; tokens expire
after 90 days unless the user asks for none."""

from __future__ import annotations

from datetime import timedelta

from api.db_types import utcnow
from tests.auth.conftest import bearer, body_text, link_token, login, make_verified_user
from tests.tokens.conftest import Account


def test_a_reset_revokes_every_api_token_and_the_email_says_so(mail_app, mailbox):
    app = mail_app()
    user_id = make_verified_user(app, "lost@example.org")
    client = app.test_client()
    account = Account(app, client, bearer(login(client, "lost@example.org")), user_id)
    tokens = [account.mint("a")["token"], account.mint("b")["token"]]
    assert all(client.get("/v1/models", headers=bearer(t)).status_code == 200 for t in tokens)

    client.post("/v1/auth/forgot-password", json={"email": "lost@example.org"})
    token = link_token(mailbox.wait_for("lost@example.org", "Reset your"))
    new = "a completely new passphrase"
    assert (
        client.post("/v1/auth/reset-password", json={"token": token, "password": new}).status_code
        == 200
    )
    for secret in tokens:
        refused = client.get("/v1/models", headers=bearer(secret))
        assert refused.status_code == 401 and refused.get_json()["error"]["code"] == "invalid_token"
    notice = body_text(mailbox.wait_for("lost@example.org", "was reset"))
    assert "2 API token(s) were revoked" in notice
    listing = client.get("/v1/tokens", headers=bearer(login(client, "lost@example.org", new)))
    assert all(t["revoked_at"] for t in listing.get_json()["data"])


def test_tokens_expire_after_90_days_unless_asked_not_to(account):
    default = account.mint("default")
    never = account.mint("never", expires_in_days=None)
    assert never["expires_at"] is None
    from datetime import datetime

    expires = datetime.fromisoformat(default["expires_at"])
    assert abs(expires - (utcnow() + timedelta(days=90))) < timedelta(minutes=1)

"""Finding 5: an attacker's failures throttle the attacker, not the account's owner."""

from __future__ import annotations

from api.process import background
from tests.auth.conftest import PASSWORD, link_token, make_verified_user

ATTACKER = {"X-Forwarded-For": "203.0.113.66"}
OWNER = {"X-Forwarded-For": "198.51.100.7"}


def test_wrong_logins_from_elsewhere_do_not_lock_the_owner_out(limited_app):
    app = limited_app(TRUSTED_PROXIES=1, LOGIN_FAILURE_LIMIT="10 per 15 minutes")
    make_verified_user(app, "owner@example.org")
    client = app.test_client()
    wrong = {"email": "owner@example.org", "password": "a wrong guess here"}
    statuses = [
        client.post("/v1/auth/login", json=wrong, headers=ATTACKER).status_code for _ in range(12)
    ]
    assert statuses == [401] * 10 + [429] * 2  # the attacker is throttled
    right = {"email": "owner@example.org", "password": PASSWORD}
    assert client.post("/v1/auth/login", json=right, headers=OWNER).status_code == 200


def test_many_failures_from_many_addresses_meet_an_account_ceiling(limited_app):
    app = limited_app(
        TRUSTED_PROXIES=1,
        LOGIN_FAILURE_LIMIT="10 per 15 minutes",
        LOGIN_ACCOUNT_FAILURE_LIMIT="20 per hour",
    )
    make_verified_user(app, "target@example.org")
    client = app.test_client()
    wrong = {"email": "target@example.org", "password": "a wrong guess here"}
    statuses = [
        client.post(
            "/v1/auth/login", json=wrong, headers={"X-Forwarded-For": f"203.0.113.{i}"}
        ).status_code
        for i in range(25)
    ]
    assert statuses == [401] * 20 + [429] * 5


def test_forgot_password_floods_do_not_block_the_owners_reset(mail_app, mailbox):
    app = mail_app(TRUSTED_PROXIES=1, EMAIL_ACTION_LIMIT="5 per hour")
    make_verified_user(app, "owner@example.org")
    client = app.test_client()
    body = {"email": "owner@example.org"}
    statuses = [
        client.post("/v1/auth/forgot-password", json=body, headers=ATTACKER).status_code
        for _ in range(8)
    ]
    assert statuses == [202] * 8  # always 202; past the limit no mail is sent
    for _ in range(5):
        mailbox.wait_for("owner@example.org", "Reset")
    own = client.post("/v1/auth/forgot-password", json=body, headers=OWNER)
    assert own.status_code == 202
    message = mailbox.wait_for("owner@example.org", "Reset")
    assert link_token(message)
    assert mailbox.messages == []  # the attacker's extra requests sent nothing


def test_resend_past_the_limit_answers_202_and_sends_nothing(mail_app, mailbox):
    app = mail_app(EMAIL_ACTION_LIMIT="2 per hour")
    client = app.test_client()
    client.post("/v1/auth/register", json={"email": "new@example.org", "password": PASSWORD})
    mailbox.wait_for("new@example.org", "Confirm")  # the first of two mails
    statuses = [
        client.post("/v1/auth/resend-verification", json={"email": "new@example.org"}).status_code
        for _ in range(3)
    ]
    assert statuses == [202, 202, 202]
    mailbox.wait_for("new@example.org", "Confirm")
    background.wait_idle()
    assert mailbox.messages == []

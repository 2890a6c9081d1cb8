"""Mail that fails or is not configured, password rehashing, and the trusted proxy hop."""

from __future__ import annotations

import time

from argon2 import PasswordHasher
from sqlalchemy import select

from api.audit.models import AuditEvent
from api.auth.models import User
from api.db_types import utcnow
from api.extensions import db
from tests.auth.conftest import PASSWORD, bearer, link_token, login, make_verified_user
from tests.services import free_port


def test_smtp_down_changes_no_answer_and_loses_no_account(make_app, mailbox, log_lines):
    down = make_app(MAIL_SERVER="127.0.0.1", MAIL_PORT=free_port())  # nothing listens there
    response = down.test_client().post(
        "/v1/auth/register", json={"email": "patient@example.org", "password": PASSWORD}
    )
    assert response.status_code == 202
    with down.app_context():
        assert db.session.scalar(select(User).where(User.email == "patient@example.org"))
    # Delivery runs in the background: wait for its failure to be logged.
    deadline = time.monotonic() + 10
    failures: list = []
    while not failures and time.monotonic() < deadline:
        failures = [line for line in log_lines() if line["message"].startswith("email not sent")]
        time.sleep(0.05)
    assert failures and "patient@example.org" not in str(failures)

    # Later, with the mail server back, the user asks again and gets a working link.
    up = make_app(MAIL_SERVER="127.0.0.1", MAIL_PORT=mailbox.port)
    client = up.test_client()
    client.post("/v1/auth/resend-verification", json={"email": "patient@example.org"})
    token = link_token(mailbox.wait_for("patient@example.org", "Confirm"))
    assert client.post("/v1/auth/verify-email", json={"token": token}).status_code == 200


def test_without_mail_server_development_writes_the_email_to_the_log(make_app, log_lines):
    app = make_app(MAIL_SERVER=None, FRONTEND_URL="http://localhost:5173")
    app.test_client().post(
        "/v1/auth/register", json={"email": "dev@example.org", "password": PASSWORD}
    )
    outbox = [line for line in log_lines() if line.get("event.dataset") == "mail.outbox"]
    assert len(outbox) == 1
    assert "http://localhost:5173/verify-email?token=" in outbox[0]["message"]


def test_login_upgrades_a_weaker_hash(app):
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    with app.app_context():
        db.session.add(
            User(email="old@example.org", password_hash=weak, email_verified_at=utcnow())
        )
        db.session.commit()
    login(app.test_client(), "old@example.org")
    with app.app_context():
        stored = db.session.scalar(
            select(User.password_hash).where(User.email == "old@example.org")
        )
    assert stored != weak and "m=19456,t=2,p=1" in stored


def _logged_ip(log_lines) -> str:
    return [line for line in log_lines() if line["log.logger"] == "modelgate.access"][-1][
        "client.ip"
    ]


def test_forwarded_for_is_ignored_without_a_trusted_proxy(make_app, log_lines):
    app = make_app(TRUSTED_PROXIES=0)
    app.test_client().get("/healthz", headers={"X-Forwarded-For": "203.0.113.9"})
    assert _logged_ip(log_lines) == "127.0.0.1"


def test_one_trusted_proxy_hop_gives_the_client_ip(make_app, log_lines):
    app = make_app(TRUSTED_PROXIES=1, RATE_LIMIT_AUTH="2/minute")
    client = app.test_client()
    client.get("/healthz", headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.9"})
    assert _logged_ip(log_lines) == "203.0.113.9"  # the hop our proxy added, not the spoofable one
    # Per-IP limits follow the real client, not the proxy's address.
    first = [
        client.post(
            "/v1/auth/forgot-password",
            json={"email": f"{i}@example.org"},
            headers={"X-Forwarded-For": "203.0.113.9"},
        ).status_code
        for i in range(3)
    ]
    other = client.post(
        "/v1/auth/forgot-password",
        json={"email": "x@example.org"},
        headers={"X-Forwarded-For": "203.0.113.10"},
    )
    assert first == [202, 202, 429] and other.status_code == 202


def test_audit_trail_of_a_session(app):
    make_verified_user(app, "aud@example.org")
    client = app.test_client()
    client.post("/v1/auth/login", json={"email": "aud@example.org", "password": "not the password"})
    access = login(client, "aud@example.org")
    client.post(
        "/v1/auth/change-password",
        headers=bearer(access),
        json={"current_password": PASSWORD, "new_password": "a brand new passphrase"},
    )
    client.post("/v1/auth/logout", headers=bearer(access))
    with app.app_context():
        events = db.session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
    assert [e.action for e in events] == ["login_failed", "login", "password_change", "logout"]
    assert all(e.ip == "127.0.0.1" and e.trace_id and e.user_agent for e in events)

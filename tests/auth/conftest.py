"""Account fixtures: a real SMTP server (aiosmtpd on loopback) and helpers to make users."""

from __future__ import annotations

import email
import email.policy
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from aiosmtpd.controller import Controller
from flask import Flask
from flask.testing import FlaskClient

from tests.services import free_port

PASSWORD = "correct horse battery staple"


@dataclass
class Mailbox:
    """Messages received by the SMTP server, parsed."""

    messages: list[email.message.EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd names the hook
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append(message)  # type: ignore[arg-type]
        return "250 OK"

    def wait_for(
        self, to: str, subject_part: str, timeout: float = 10.0
    ) -> email.message.EmailMessage:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.messages:
                if message["To"] == to and subject_part in message["Subject"]:
                    self.messages.remove(message)
                    return message
            time.sleep(0.02)
        seen = [(m["To"], m["Subject"]) for m in self.messages]
        raise AssertionError(f"no email to {to} with {subject_part!r} in {timeout}s; got {seen}")


def body_text(message: email.message.EmailMessage) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def link_token(message: email.message.EmailMessage) -> str:
    match = re.search(r"\?token=([A-Za-z0-9_-]+)", body_text(message))
    assert match, body_text(message)
    return match.group(1)


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    box.port = controller.port  # type: ignore[attr-defined]
    yield box
    controller.stop()


def mail_settings(mailbox: Mailbox, redis_url: str) -> dict[str, object]:
    """Settings for an app with real SMTP (this mailbox) and real Redis."""
    return {
        "MAIL_SERVER": "127.0.0.1",
        "MAIL_PORT": mailbox.port,  # type: ignore[attr-defined]
        "REDIS_URL": redis_url,
        "RATELIMIT_STORAGE_URI": redis_url,
        "FRONTEND_URL": "https://app.example.test",
    }


@pytest.fixture
def mail_app(make_app, mailbox, redis_url, redis_db) -> Flask:
    """An app with real SMTP and real Redis (revocation cache and rate limits)."""
    return make_app(**mail_settings(mailbox, redis_url))


def register_and_verify(client: FlaskClient, mailbox: Mailbox, address: str) -> None:
    response = client.post("/v1/auth/register", json={"email": address, "password": PASSWORD})
    assert response.status_code == 202
    token = link_token(mailbox.wait_for(address, "Confirm"))
    assert client.post("/v1/auth/verify-email", json={"token": token}).status_code == 200


def login(client: FlaskClient, address: str, password: str = PASSWORD) -> str:
    response = client.post("/v1/auth/login", json={"email": address, "password": password})
    assert response.status_code == 200, response.get_json()
    return response.get_json()["access_token"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def make_verified_user(app: Flask, address: str, role: str = "user"):
    """Create a verified user straight in the database (for tests not about sign-up)."""
    from api.auth.models import User
    from api.auth.passwords import hash_password
    from api.db_types import utcnow
    from api.extensions import db

    with app.app_context():
        user = User(
            email=address,
            password_hash=hash_password(PASSWORD),
            role=role,
            email_verified_at=utcnow(),
        )
        db.session.add(user)
        db.session.commit()
        return user.id

"""Sending email without making the HTTP answer wait or depend on the mail server.

Messages are handed to a small thread pool; a mail server that is down only
produces a logged error (the account and its token are already committed, and the
user can ask again). With no `MAIL_SERVER` outside production, the message is
written to the log instead, links included, so a developer can click them.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future
from dataclasses import dataclass

from flask import current_app
from flask_mail import Message

from api import background
from api.extensions import mail

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Email:
    to: str
    subject: str
    text: str
    html: str


def _deliver(email: Email) -> None:
    try:
        message = Message(
            subject=email.subject, recipients=[email.to], body=email.text, html=email.html
        )
        mail.send(message)
        log.info("email sent", extra={"email.subject": email.subject})
    except Exception as error:
        log.error(
            "email not sent: mail server failed",
            extra={"email.subject": email.subject, "error.type": type(error).__name__},
        )


def send_email(email: Email) -> Future[None] | None:
    """Queue `email` for delivery; returns the delivery future (None when only logged)."""
    if not current_app.config.get("MAIL_SERVER"):
        log.info(
            "email (no MAIL_SERVER: development outbox)\nTo: %s\nSubject: %s\n\n%s",
            email.to,
            email.subject,
            email.text,
            extra={"event.dataset": "mail.outbox"},
        )
        return None
    return background.submit(_deliver, email)

"""Sending email without making the HTTP answer wait or depend on the mail server.

Messages are handed to a small thread pool; a mail server that is down only
produces a logged error (the account and its token are already committed, and the
user can ask again). With no `MAIL_SERVER` outside production, the message is
written to the log instead, links included, so a developer can click them.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from flask import Flask, current_app
from flask_mail import Message

from api.extensions import mail
from api.observability.tracing import bind_trace_id, current_trace_id, reset_trace_id

log = logging.getLogger(__name__)
_pool: ThreadPoolExecutor | None = None


@dataclass(frozen=True)
class Email:
    to: str
    subject: str
    text: str
    html: str


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="mail")
    return _pool


def _deliver(app: Flask, email: Email, trace_id: str | None) -> None:
    token = bind_trace_id(trace_id)
    try:
        with app.app_context():
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
    finally:
        reset_trace_id(token)


def send_email(email: Email) -> Future[None] | None:
    """Queue `email` for delivery; returns the delivery future (None when only logged)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if not app.config.get("MAIL_SERVER"):
        log.info(
            "email (no MAIL_SERVER: development outbox)\nTo: %s\nSubject: %s\n\n%s",
            email.to,
            email.subject,
            email.text,
            extra={"event.dataset": "mail.outbox"},
        )
        return None
    return _executor().submit(_deliver, app, email, current_trace_id())

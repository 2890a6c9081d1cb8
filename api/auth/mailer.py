"""Sending email without making the HTTP answer wait or depend on the mail server.

Messages are handed to a small thread pool; a mail server that is down changes no
answer (the account and its token are already committed). A failed send is tried
again after each of `MAIL_RETRY_DELAYS_S` (10 s, 1 min, 5 min, 30 min by default),
each retry a warning in the log, then given up with an error; the user can also ask
again. Retries wait in this process: a worker that exits drops its pending ones.
With no `MAIL_SERVER` outside production, the message is written to the log
instead, and its link printed on stderr as one plain line a developer can click
(`Verification link for me@example.org: http://127.0.0.1:8000/verify-email?token=...`);
production never does either (it refuses to start without `MAIL_SERVER`, and an
email without one there is dropped with an error, its text unlogged).
"""

from __future__ import annotations

import logging
import sys
from concurrent.futures import Future
from dataclasses import dataclass

from flask import current_app
from flask_mail import Message

from api.extensions import mail
from api.process import background

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Email:
    to: str
    subject: str
    text: str
    html: str
    link: str | None = None  # the one link to follow, printed plainly in development
    link_label: str = "Link"


def _deliver(email: Email, attempt: int = 1) -> None:
    try:
        message = Message(
            subject=email.subject, recipients=[email.to], body=email.text, html=email.html
        )
        mail.send(message)
        log.info("email sent (try %d)", attempt, extra={"email.subject": email.subject})
    except Exception as error:
        delays = current_app.config["MAIL_RETRY_DELAYS_S"]
        fields = {"email.subject": email.subject, "error.type": type(error).__name__}
        if attempt > len(delays):
            log.error(
                "email not sent: mail server failed (try %d), giving up", attempt, extra=fields
            )
            return
        delay = delays[attempt - 1]
        log.warning(
            "email not sent: mail server failed (try %d), retrying in %g s",
            attempt,
            delay,
            extra=fields,
        )
        background.submit_later(delay, _deliver, email, attempt + 1)


def send_email(email: Email) -> Future[None] | None:
    """Queue `email` for delivery; returns the delivery future (None when not sent)."""
    config = current_app.config
    if config.get("MAIL_SERVER"):
        return background.submit(_deliver, email)
    if config["MODELGATE_ENV"] == "production":
        log.error("email not sent: no MAIL_SERVER", extra={"email.subject": email.subject})
        return None
    log.info(
        "email (no MAIL_SERVER: development outbox)\nTo: %s\nSubject: %s\n\n%s",
        email.to,
        email.subject,
        email.text,
        extra={"event.dataset": "mail.outbox"},
    )
    if email.link:
        # One plain line: the JSON log escapes the message, and its link is hard to click.
        print(f"{email.link_label} for {email.to}: {email.link}", file=sys.stderr, flush=True)
    return None

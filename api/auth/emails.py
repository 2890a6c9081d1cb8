"""The account emails, each with a plain-text and an HTML body."""

from __future__ import annotations

from html import escape

from flask import current_app

from api.auth.mailer import Email


def _link(path: str, token: str) -> str:
    # Links come from FRONTEND_URL, never from the request's Host header.
    return f"{current_app.config['FRONTEND_URL']}{path}?token={token}"


def _html(paragraphs: list[str], link: str | None = None, label: str = "") -> str:
    body = "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
    if link:
        body += f'<p><a href="{escape(link)}">{escape(label)}</a></p>'
    return f"<!doctype html><html><body>{body}</body></html>"


def verification_email(to: str, token: str) -> Email:
    link = _link("/verify-email", token)
    lines = ["Welcome to modelgate.", "Confirm your email address within 24 hours:"]
    return Email(
        to=to,
        subject="Confirm your modelgate account",
        text="\n\n".join([*lines, link, "If you did not sign up, ignore this email."]),
        html=_html(lines, link, "Confirm my email"),
        link=link,
        link_label="Verification link",
    )


def already_registered_email(to: str) -> Email:
    link = f"{current_app.config['FRONTEND_URL']}/forgot-password"
    lines = [
        "Someone tried to create a modelgate account with this address, which already has one.",
        "If it was you, sign in, or reset your password here:",
    ]
    return Email(
        to=to,
        subject="You already have a modelgate account",
        text="\n\n".join([*lines, link]),
        html=_html(lines, link, "Reset my password"),
        link=link,
        link_label="Existing account's password reset page",
    )


def reset_email(to: str, token: str) -> Email:
    link = _link("/reset-password", token)
    lines = ["Reset your modelgate password within one hour:"]
    return Email(
        to=to,
        subject="Reset your modelgate password",
        text="\n\n".join([*lines, link, "If you did not ask for this, ignore this email."]),
        html=_html(lines, link, "Choose a new password"),
        link=link,
        link_label="Password reset link",
    )


def password_reset_done_email(to: str, revoked_tokens: int) -> Email:
    lines = [
        "Your modelgate password was just reset, and every session was signed out.",
        (
            f"For your safety, your {revoked_tokens} API token(s) were revoked as well: "
            "create new ones from the dashboard."
            if revoked_tokens
            else "You had no live API tokens, so none were revoked."
        ),
        "If you did not do this, reset your password again at once and contact us.",
    ]
    return Email(
        to=to,
        subject="Your modelgate password was reset",
        text="\n\n".join(lines),
        html=_html(lines),
    )

"""Small HTTP-layer helpers shared by the blueprints' routes."""

from __future__ import annotations

from flask import request

from api.audit.service import Client


def current_client() -> Client:
    """The caller's IP (after ProxyFix) and user agent."""
    return Client(ip=request.remote_addr, user_agent=request.user_agent.string or None)


def json_field(name: str) -> str | None:
    """A string field of the JSON body, or None (for rate-limit keys, before validation)."""
    body = request.get_json(silent=True)
    value = body.get(name) if isinstance(body, dict) else None
    return value if isinstance(value, str) and value.strip() else None

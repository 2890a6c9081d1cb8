"""Small HTTP-layer helpers shared by the blueprints' routes."""

from __future__ import annotations

from dataclasses import dataclass

from flask import request


@dataclass(frozen=True)
class Client:
    """Where a request came from, as far as the audit trail cares."""

    ip: str | None = None
    user_agent: str | None = None


def current_client() -> Client:
    """The caller's IP (after ProxyFix) and user agent."""
    return Client(ip=request.remote_addr, user_agent=request.user_agent.string or None)


def json_field(name: str) -> str | None:
    """A string field of the JSON body, or None (for rate-limit keys, before validation)."""
    body = request.get_json(silent=True)
    value = body.get(name) if isinstance(body, dict) else None
    return value if isinstance(value, str) and value.strip() else None

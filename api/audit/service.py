"""Recording audit events. Callers pass who and where; the trace id is picked up here."""

from __future__ import annotations

from typing import Any

from api.audit.models import AuditEvent
from api.edge.http import Client
from api.extensions import db
from api.observability.tracing import current_trace_id


def record_event(
    action: str,
    client: Client,
    *,
    user_id: int | None = None,
    actor_id: int | None = None,
    **details: Any,
) -> AuditEvent:
    """Add an audit event to the session; it is committed with the caller's change."""
    event = AuditEvent(
        action=action,
        user_id=user_id,
        actor_id=actor_id if actor_id is not None else user_id,
        ip=client.ip,
        user_agent=(client.user_agent or "")[:256] or None,
        trace_id=current_trace_id(),
        details=details,
    )
    db.session.add(event)
    return event

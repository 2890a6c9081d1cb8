"""The `responses` table: responses kept (`store: true`) so a later call can continue them.

A row belongs to its user (deleted with the account, as the history is) and to the
token that made it (a token sees only its own, as with the history). `body` is the
response object as it was answered; `input_items` the items this request gave;
`previous_response_id` links the previous response, whose turns come first.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from api.db_types import UTCDateTime, utcnow
from api.extensions import db


class StoredResponse(db.Model):  # type: ignore[name-defined]
    __tablename__ = "responses"
    __table_args__ = (Index("ix_responses_user_id_created_at", "user_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    token_id: Mapped[int | None] = mapped_column(ForeignKey("api_tokens.id", ondelete="SET NULL"))
    # A deleted previous response ends the chain there: its turns are forgotten with it.
    previous_response_id: Mapped[str | None] = mapped_column(
        ForeignKey("responses.id", ondelete="SET NULL")
    )
    model: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    input_items: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    trace_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

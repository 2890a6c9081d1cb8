"""The `inference_records` table: one row per metered API call."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from api.db_types import UTCDateTime, utcnow
from api.extensions import db


class InferenceRecord(db.Model):  # type: ignore[name-defined]
    __tablename__ = "inference_records"
    __table_args__ = (
        Index("ix_inference_records_user_created", "user_id", "created_at"),
        Index("ix_inference_records_request_id", "request_id", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    token_id: Mapped[int | None] = mapped_column(ForeignKey("api_tokens.id", ondelete="SET NULL"))
    endpoint: Mapped[str] = mapped_column(String(32))
    model: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[int]
    tokens_in: Mapped[int] = mapped_column(default=0)
    tokens_out: Mapped[int] = mapped_column(default=0)
    units: Mapped[int] = mapped_column(default=0, server_default="0")  # a handler model's
    latency_ms: Mapped[float]
    trace_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Unique per call: a replayed bulk write from the usage spool inserts nothing twice.
    request_id: Mapped[str | None] = mapped_column(String(32))


class HistoryEntry(db.Model):  # type: ignore[name-defined]
    """A completion kept for its user: the prompt and what the model wrote."""

    __tablename__ = "history"
    __table_args__ = (Index("ix_history_user_id_id", "user_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    token_id: Mapped[int | None] = mapped_column(ForeignKey("api_tokens.id", ondelete="SET NULL"))
    model: Mapped[str] = mapped_column(String(64))
    prompt: Mapped[str] = mapped_column(Text)
    completion: Mapped[str] = mapped_column(Text)
    finish_reason: Mapped[str | None] = mapped_column(String(16))
    prompt_tokens: Mapped[int] = mapped_column(default=0)
    completion_tokens: Mapped[int] = mapped_column(default=0)
    trace_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class RejectedCalls(db.Model):  # type: ignore[name-defined]
    """Calls refused with 429, counted per user, UTC day and endpoint: one row, not one per call."""

    __tablename__ = "rejected_calls"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(32), primary_key=True)
    count: Mapped[int] = mapped_column(default=0)

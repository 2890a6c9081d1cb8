"""Cursor paging as OpenAI's list endpoints do it: `after` an id, newest first by default."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, tuple_

from api.extensions import db


def page_after(
    query: Select[Any], model: Any, after: Any | None, *, order: str, limit: int
) -> tuple[list[Any], bool]:
    """Up to `limit` rows of `query` past the row `after` in (created_at, id) order; and more?"""
    key = tuple_(model.created_at, model.id)
    if after is not None:
        mark = tuple_(after.created_at, after.id)
        query = query.where(key < mark if order == "desc" else key > mark)
    ordering = (
        (model.created_at.desc(), model.id.desc())
        if order == "desc"
        else (model.created_at, model.id)
    )
    rows = list(db.session.scalars(query.order_by(*ordering).limit(limit + 1)))
    return rows[:limit], len(rows) > limit


def list_object(data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    """OpenAI's list envelope."""
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }

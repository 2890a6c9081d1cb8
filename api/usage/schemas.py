"""Schemas of the usage endpoints."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from api.edge.validation import Id


class UsageArgs(Schema):
    days = fields.Integer(load_default=30, validate=validate.Range(min=1, max=366))
    token = Id(load_default=None)


class UsageRow(Schema):
    date = fields.String()
    user_id = fields.Integer()
    email = fields.String(metadata={"description": "The user's email."})
    token_id = fields.Integer(
        allow_none=True, metadata={"description": "The API token; null for a web session."}
    )
    endpoint = fields.String(
        metadata={
            "description": "`embeddings`, `chat_completions`, ...; a batch's lines are "
            "`batch_embeddings`, `batch_completions`, `batch_chat_completions` "
            "(under the token that created the batch)."
        }
    )
    model = fields.String(allow_none=True, metadata={"description": "Null when none was used."})
    requests = fields.Integer()
    tokens_in = fields.Integer()
    tokens_out = fields.Integer()
    units = fields.Integer(
        metadata={"description": "A handler model's units (images, items ...); 0 for the others."}
    )
    errors = fields.Integer()


class RejectedRow(Schema):
    date = fields.String()
    user_id = fields.Integer()
    email = fields.String(metadata={"description": "The user's email."})
    endpoint = fields.String()
    count = fields.Integer(metadata={"description": "Calls refused with 429 that day."})


class UsageOut(Schema):
    days = fields.Integer()
    data = fields.List(fields.Nested(UsageRow))
    rate_limited = fields.List(
        fields.Nested(RejectedRow),
        metadata={"description": "Calls refused with 429, per day and endpoint (not in data)."},
    )


class HistoryArgs(Schema):
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))
    before = Id(load_default=None)


class HistoryEntryOut(Schema):
    id = fields.Integer()
    model = fields.String()
    prompt = fields.String()
    completion = fields.String()
    finish_reason = fields.String(allow_none=True)
    prompt_tokens = fields.Integer()
    completion_tokens = fields.Integer()
    token_id = fields.Integer(allow_none=True)
    trace_id = fields.String(allow_none=True)
    created_at = fields.DateTime()


class HistoryOut(Schema):
    data = fields.List(fields.Nested(HistoryEntryOut))

"""Schemas of the batch endpoints: OpenAI's batch object and its create and list arguments."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from api.batches.lines import ENDPOINTS
from api.edge.validation import JsonInteger
from api.files.schemas import MAX_EXPIRY_S, MIN_EXPIRY_S, PageArgs, PageOut

STATUSES = [
    "validating",
    "failed",
    "in_progress",
    "finalizing",
    "completed",
    "expired",
    "cancelling",
    "cancelled",
]


class Metadata(fields.Dict):
    """String pairs; values of at most 512 characters (the service checks the rest, see there)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            keys=fields.String(),
            values=fields.String(validate=validate.Length(max=512)),
            metadata={"description": "Up to 16 pairs; keys of at most 64 characters."},
            **kwargs,
        )


class OutputExpiresAfter(Schema):
    anchor = fields.String(required=True, validate=validate.OneOf(["created_at"]))
    seconds = JsonInteger(
        required=True, validate=validate.Range(min=MIN_EXPIRY_S, max=MAX_EXPIRY_S)
    )


class BatchCreateIn(Schema):
    input_file_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    endpoint = fields.String(required=True, validate=validate.OneOf(sorted(ENDPOINTS)))
    completion_window = fields.String(
        required=True,
        validate=validate.Regexp("^[1-9][0-9]{0,4}[smh]$"),
        metadata={"description": "`24h` as OpenAI; also 10s to 168h as `<n>s`, `<n>m`, `<n>h`."},
    )
    metadata = Metadata(load_default=None, allow_none=True)
    output_expires_after = fields.Nested(OutputExpiresAfter, load_default=None)


class RequestCounts(Schema):
    total = fields.Integer()
    completed = fields.Integer()
    failed = fields.Integer()


class BatchError(Schema):
    code = fields.String()
    message = fields.String()
    param = fields.String(allow_none=True)
    line = fields.Integer(allow_none=True)


class BatchErrors(Schema):
    object = fields.String(validate=validate.OneOf(["list"]))
    data = fields.List(fields.Nested(BatchError))


class CachedTokens(Schema):
    cached_tokens = fields.Integer()


class ReasoningTokens(Schema):
    reasoning_tokens = fields.Integer()


class BatchUsage(Schema):
    input_tokens = fields.Integer()
    input_tokens_details = fields.Nested(CachedTokens)
    output_tokens = fields.Integer()
    output_tokens_details = fields.Nested(ReasoningTokens)
    total_tokens = fields.Integer()


def _timestamp() -> fields.Integer:
    return fields.Integer(allow_none=True)


class BatchOut(Schema):
    id = fields.String()
    object = fields.String(validate=validate.OneOf(["batch"]))
    endpoint = fields.String()
    model = fields.String(allow_none=True)
    errors = fields.Nested(BatchErrors, allow_none=True)
    input_file_id = fields.String()
    completion_window = fields.String()
    status = fields.String(validate=validate.OneOf(STATUSES))
    output_file_id = fields.String(allow_none=True)
    error_file_id = fields.String(allow_none=True)
    created_at = fields.Integer()
    in_progress_at = _timestamp()
    expires_at = _timestamp()
    finalizing_at = _timestamp()
    completed_at = _timestamp()
    failed_at = _timestamp()
    expired_at = _timestamp()
    cancelling_at = _timestamp()
    cancelled_at = _timestamp()
    request_counts = fields.Nested(RequestCounts)
    usage = fields.Nested(BatchUsage)
    metadata = fields.Dict(keys=fields.String(), values=fields.String(), allow_none=True)


class BatchListOut(PageOut):
    data = fields.List(fields.Nested(BatchOut))


class BatchListArgs(PageArgs):
    pass

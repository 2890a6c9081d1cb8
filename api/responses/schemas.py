"""Request and response schemas of `/v1/responses` (OpenAI's shapes, text only).

A field modelgate does not serve is refused by name (400), never ignored: tools and
function calling, `reasoning`, structured `text.format`, images and files in the
input, `background`, `conversation`, `prompt`. Options whose neutral value changes
nothing (`tools: []`, `tool_choice: "auto"`, `include: []`) are accepted, because
agent frameworks send them by default. docs/api.md has the table.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from api.edge.validation import JsonBoolean, JsonFloat, JsonInteger
from api.inference.fields import Neutral
from api.inference.schemas import MAX_PROMPT_CHARS, MAX_TOKENS, StrictSchema
from api.responses.items import ROLES, ResponseInput

MAX_METADATA = 16


class Refused(Neutral):
    """A field accepted only at its neutral value, refused otherwise with why."""

    def __init__(self, *values: Any, reason: str, openapi: dict[str, Any]) -> None:
        super().__init__(*values, openapi=openapi)
        self.reason = reason

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        try:
            return super()._deserialize(value, attr, data, **kwargs)
        except ValidationError:
            raise ValidationError(f"{self.reason} (see docs/api.md).") from None


class TextFormatIn(StrictSchema):
    type = fields.String(
        required=True,
        validate=validate.OneOf(["text"], error="Only 'text' is supported (see docs/api.md)."),
    )


class TextIn(StrictSchema):
    format = fields.Nested(TextFormatIn, load_default=None, allow_none=True)
    verbosity = Neutral("medium", openapi={"type": "string", "enum": ["medium"]})


def _metadata(value: dict) -> None:
    if len(value) > MAX_METADATA or any(
        len(key) > 64 or not isinstance(text, str) or len(text) > 512 for key, text in value.items()
    ):
        raise ValidationError(
            f"At most {MAX_METADATA} pairs: keys of at most 64, values strings of at most 512."
        )


class ResponseCreateIn(StrictSchema):
    model = fields.String(load_default=None, validate=validate.Length(min=1, max=64))
    input = ResponseInput(required=True)
    instructions = fields.String(
        load_default=None, allow_none=True, validate=validate.Length(max=MAX_PROMPT_CHARS)
    )
    max_output_tokens = JsonInteger(
        load_default=None, allow_none=True, validate=validate.Range(min=1, max=MAX_TOKENS)
    )
    temperature = JsonFloat(
        load_default=1.0, allow_none=True, validate=validate.Range(min=0, max=2)
    )
    top_p = JsonFloat(
        load_default=1.0,
        allow_none=True,
        validate=validate.Range(min=0, max=1, min_inclusive=False),
    )
    metadata = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        load_default=None,
        allow_none=True,
        validate=_metadata,
        metadata={"description": f"At most {MAX_METADATA} string pairs, kept with the response."},
    )
    store = JsonBoolean(load_default=True)
    stream = JsonBoolean(load_default=False)
    previous_response_id = fields.String(
        load_default=None, allow_none=True, validate=validate.Length(min=1, max=64)
    )
    truncation = fields.String(
        load_default="disabled",
        allow_none=True,
        validate=validate.OneOf(["disabled", "auto"]),
        metadata={"description": "`auto` drops the oldest turns that do not fit the window."},
    )
    text = fields.Nested(TextIn, load_default=None, allow_none=True)
    user = fields.String(
        load_default=None, validate=validate.Length(max=256), metadata={"description": "Ignored."}
    )
    background = Refused(
        False,
        reason="Background responses are not supported; call without `background`",
        openapi={"type": "boolean", "enum": [False]},
    )
    tools = Refused(
        [],
        reason="Tools and function calling (file_search, web_search, functions) are not supported",
        openapi={"type": "array", "maxItems": 0, "items": {}},
    )
    tool_choice = Refused(
        "auto",
        "none",
        reason="No tools are supported, so only 'auto' or 'none'",
        openapi={"type": "string", "enum": ["auto", "none"]},
    )
    parallel_tool_calls = Neutral(True, False, openapi={"type": "boolean"})
    include = Refused(
        [],
        reason="No extra output (logprobs, reasoning, tool results) is available",
        openapi={"type": "array", "maxItems": 0, "items": {}},
    )
    top_logprobs = Refused(
        0, reason="Log probabilities are not supported", openapi={"type": "integer", "enum": [0]}
    )
    service_tier = Neutral(
        "auto", "default", openapi={"type": "string", "enum": ["auto", "default"]}
    )


class InputItemsArgs(StrictSchema):
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))
    order = fields.String(load_default="desc", validate=validate.OneOf(["asc", "desc"]))
    after = fields.String(load_default=None, validate=validate.Length(min=1, max=64))


class OutputTextOut(Schema):
    type = fields.Constant("output_text")
    text = fields.String()
    annotations = fields.List(fields.Raw(), metadata={"description": "Always empty."})
    logprobs = fields.List(fields.Raw(), metadata={"description": "Always empty."})


class OutputMessageOut(Schema):
    type = fields.Constant("message")
    id = fields.String()
    status = fields.String(metadata={"enum": ["in_progress", "completed", "incomplete"]})
    role = fields.Constant("assistant")
    content = fields.List(fields.Nested(OutputTextOut))


class ResponseUsageOut(Schema):
    input_tokens = fields.Integer()
    input_tokens_details = fields.Dict(metadata={"description": "`cached_tokens`: 0."})
    output_tokens = fields.Integer()
    output_tokens_details = fields.Dict(metadata={"description": "`reasoning_tokens`: 0."})
    total_tokens = fields.Integer()


class ResponseOut(Schema):
    id = fields.String()
    object = fields.Constant("response")
    created_at = fields.Integer()
    status = fields.String(metadata={"enum": ["completed", "incomplete", "failed", "in_progress"]})
    error = fields.Dict(allow_none=True)
    incomplete_details = fields.Dict(allow_none=True)
    instructions = fields.String(allow_none=True)
    max_output_tokens = fields.Integer(allow_none=True)
    model = fields.String()
    output = fields.List(fields.Nested(OutputMessageOut))
    output_text = fields.String(metadata={"description": "The output's text, joined."})
    parallel_tool_calls = fields.Boolean()
    previous_response_id = fields.String(allow_none=True)
    reasoning = fields.Dict(allow_none=True)
    store = fields.Boolean()
    background = fields.Boolean()
    temperature = fields.Float()
    top_p = fields.Float()
    text = fields.Dict()
    tool_choice = fields.String()
    tools = fields.List(fields.Raw())
    truncation = fields.String()
    usage = fields.Nested(ResponseUsageOut, allow_none=True)
    user = fields.String(allow_none=True)
    metadata = fields.Dict()


class InputItemOut(Schema):
    type = fields.Constant("message")
    id = fields.String()
    status = fields.Constant("completed")
    role = fields.String(metadata={"enum": list(ROLES)})
    content = fields.List(fields.Dict())


class InputItemListOut(Schema):
    object = fields.Constant("list")
    data = fields.List(fields.Nested(InputItemOut))
    first_id = fields.String(allow_none=True)
    last_id = fields.String(allow_none=True)
    has_more = fields.Boolean()


class ResponseDeletedOut(Schema):
    id = fields.String()
    object = fields.Constant("response.deleted")
    deleted = fields.Constant(True)

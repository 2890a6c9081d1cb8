"""Request and response schemas of the inference endpoints (OpenAI-compatible shapes).

Unknown fields are ignored rather than refused, as OpenAI's own API does, so
client libraries that send extra options (`user`, `n`, ...) keep working.
"""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

MAX_INPUTS = 64
MAX_INPUT_CHARS = 8192
MAX_PROMPT_CHARS = 4096
MAX_TOKENS = 256
MAX_STOP = 4


class StringOrList(fields.Field):
    """A string or a list of strings, always loaded as a list."""

    def __init__(self, *, max_items: int, max_chars: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_items, self.max_chars = max_items, max_chars

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[str]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            raise ValidationError("Give a string or a list of strings.")
        if not items or len(items) > self.max_items:
            raise ValidationError(f"Give 1 to {self.max_items} strings.")
        long = [i for i, item in enumerate(items) if len(item) > self.max_chars]
        if long:
            raise ValidationError(
                f"Each string may have at most {self.max_chars} characters (too long: {long})."
            )
        return items


class InferenceIn(Schema):
    class Meta:
        unknown = EXCLUDE

    model = fields.String(load_default=None, validate=validate.Length(min=1, max=64))


class EmbeddingIn(InferenceIn):
    input = StringOrList(required=True, max_items=MAX_INPUTS, max_chars=MAX_INPUT_CHARS)
    encoding_format = fields.String(
        load_default="float", validate=validate.OneOf(["float", "base64"])
    )


class CompletionIn(InferenceIn):
    prompt = StringOrList(required=True, max_items=1, max_chars=MAX_PROMPT_CHARS)
    max_tokens = fields.Integer(load_default=16, validate=validate.Range(min=1, max=MAX_TOKENS))
    temperature = fields.Float(load_default=1.0, validate=validate.Range(min=0, max=2))
    top_p = fields.Float(
        load_default=1.0, validate=validate.Range(min=0, max=1, min_inclusive=False)
    )
    stream = fields.Boolean(load_default=False)
    seed = fields.Integer(
        load_default=None, allow_none=True, validate=validate.Range(min=0, max=2**63 - 1)
    )
    stop = StringOrList(load_default=None, allow_none=True, max_items=MAX_STOP, max_chars=64)
    n = fields.Integer(load_default=1, validate=validate.Equal(1, error="Only n=1 is supported."))
    stream_options = fields.Dict(load_default=None, allow_none=True)


class ModelOut(Schema):
    id = fields.String()
    object = fields.Constant("model")
    owned_by = fields.Constant("modelgate")
    task = fields.String()
    parameters = fields.Integer()
    max_input = fields.Integer()
    device = fields.String()


class ModelListOut(Schema):
    object = fields.Constant("list")
    data = fields.List(fields.Nested(ModelOut))


class TokenUsageOut(Schema):
    prompt_tokens = fields.Integer()
    completion_tokens = fields.Integer()
    total_tokens = fields.Integer()


class EmbeddingItemOut(Schema):
    object = fields.Constant("embedding")
    index = fields.Integer()
    embedding = fields.Raw(metadata={"description": "floats, or base64 little-endian float32"})


class EmbeddingListOut(Schema):
    object = fields.Constant("list")
    data = fields.List(fields.Nested(EmbeddingItemOut))
    model = fields.String()
    usage = fields.Nested(TokenUsageOut)


class ChoiceOut(Schema):
    text = fields.String()
    index = fields.Integer()
    logprobs = fields.Constant(None)
    finish_reason = fields.String(allow_none=True)


class CompletionOut(Schema):
    id = fields.String()
    object = fields.Constant("text_completion")
    created = fields.Integer()
    model = fields.String()
    choices = fields.List(fields.Nested(ChoiceOut))
    usage = fields.Nested(TokenUsageOut)

"""Request and response schemas of the inference endpoints (OpenAI-compatible shapes).

Requests refuse unknown fields (400 naming the field): a client that asks for
`logprobs`, `echo`, `tools` or a JSON `response_format` learns at once that it
will not get them, instead of getting silence. OpenAI options whose neutral value
changes nothing (`frequency_penalty: 0`, `logit_bias: {}`, `user`) are accepted,
because client libraries send them by default. docs/api.md has the table.
"""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate

from api.edge.validation import JsonBoolean, JsonFloat, JsonInteger
from api.inference import service
from api.inference.fields import EmbeddingInput, Neutral, StringOrList

MAX_INPUTS = 64
MAX_INPUT_CHARS = 8192
MAX_PROMPT_CHARS = 4096
MAX_PROMPTS = 4
MAX_CHOICES = 4  # `n`
MAX_TOKENS = 256
MAX_STOP = 4
MAX_MESSAGES = 64
UNSUPPORTED = "Not supported by modelgate (see docs/api.md)."


class StrictSchema(Schema):
    """Unknown fields are refused by name."""

    class Meta:
        unknown = RAISE

    error_messages = {"unknown": UNSUPPORTED}


class StreamOptions(StrictSchema):
    include_usage = JsonBoolean(load_default=False)


class SamplingIn(StrictSchema):
    """What completions and chat share: the model, sampling, stops, `n` and streaming."""

    model = fields.String(load_default=None, validate=validate.Length(min=1, max=64))
    temperature = JsonFloat(load_default=1.0, validate=validate.Range(min=0, max=2))
    top_p = JsonFloat(load_default=1.0, validate=validate.Range(min=0, max=1, min_inclusive=False))
    seed = JsonInteger(
        load_default=None, allow_none=True, validate=validate.Range(min=0, max=2**63 - 1)
    )
    stop = StringOrList(load_default=None, allow_none=True, max_items=MAX_STOP, max_chars=64)
    n = JsonInteger(
        load_default=1,
        validate=validate.Range(min=1, max=MAX_CHOICES),
        metadata={"description": f"Choices per prompt, at most {MAX_CHOICES}."},
    )
    stream = JsonBoolean(load_default=False)
    stream_options = fields.Nested(StreamOptions, load_default=None, allow_none=True)
    user = fields.String(
        load_default=None, validate=validate.Length(max=256), metadata={"description": "Ignored."}
    )
    frequency_penalty = Neutral(0, openapi={"type": "number", "enum": [0]})
    presence_penalty = Neutral(0, openapi={"type": "number", "enum": [0]})
    logit_bias = Neutral({}, openapi={"type": "object", "maxProperties": 0})


class EmbeddingIn(StrictSchema):
    """Loads `input` as texts: token ids become the text the model's tokenizer makes them
    (which needs the model, so an unknown one is a 404 here and a bad id a 422)."""

    model = fields.String(load_default=None, validate=validate.Length(min=1, max=64))
    input = EmbeddingInput(required=True, max_items=MAX_INPUTS, max_chars=MAX_INPUT_CHARS)
    encoding_format = fields.String(
        load_default="float", validate=validate.OneOf(["float", "base64"])
    )
    user = fields.String(
        load_default=None, validate=validate.Length(max=256), metadata={"description": "Ignored."}
    )

    @post_load
    def decode_token_ids(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        if any(not isinstance(item, str) for item in data["input"]):
            data["input"] = service.texts_from_token_ids(data["model"], data["input"])
        return data


class CompletionIn(SamplingIn):
    prompt = StringOrList(required=True, max_items=MAX_PROMPTS, max_chars=MAX_PROMPT_CHARS)
    max_tokens = JsonInteger(load_default=16, validate=validate.Range(min=1, max=MAX_TOKENS))
    logprobs = Neutral(0, openapi={"type": "integer", "enum": [0]})
    echo = Neutral(False, openapi={"type": "boolean", "enum": [False]})
    suffix = Neutral("", openapi={"type": "string", "enum": [""]})
    best_of = Neutral(1, openapi={"type": "integer", "enum": [1]})


class TextPart(StrictSchema):
    type = fields.String(required=True, validate=validate.OneOf(["text"]))
    text = fields.String(required=True, validate=validate.Length(max=MAX_PROMPT_CHARS))


class MessageContent(fields.Field):
    """A message's content: a string, or a list of text parts (joined with no separator)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if isinstance(value, str):
            if len(value) > MAX_PROMPT_CHARS:
                raise ValidationError(f"At most {MAX_PROMPT_CHARS} characters.")
            return value
        if not isinstance(value, list) or not 1 <= len(value) <= MAX_MESSAGES:
            raise ValidationError("Give a string or a list of text parts.")
        parts = TextPart(many=True).load(value)
        return "".join(part["text"] for part in parts)

    def openapi_property(self) -> dict[str, Any]:
        text = {"type": "string", "maxLength": MAX_PROMPT_CHARS, "pattern": "^[^\\x00]*$"}
        part = {
            "type": "object",
            "required": ["type", "text"],
            "additionalProperties": False,
            "properties": {"type": {"type": "string", "enum": ["text"]}, "text": text},
        }
        return {"oneOf": [text, {"type": "array", "items": part, "minItems": 1, "maxItems": 64}]}


class ChatMessageIn(StrictSchema):
    role = fields.String(
        required=True, validate=validate.OneOf(["system", "developer", "user", "assistant"])
    )
    content = MessageContent(required=True)
    name = fields.String(load_default=None, validate=validate.Length(max=64))


class ResponseFormatIn(StrictSchema):
    type = fields.String(
        required=True,
        validate=validate.OneOf(["text"], error="Only 'text' is supported (see docs/api.md)."),
    )


class ChatCompletionIn(SamplingIn):
    messages = fields.List(
        fields.Nested(ChatMessageIn),
        required=True,
        validate=validate.Length(min=1, max=MAX_MESSAGES),
    )
    max_tokens = JsonInteger(
        load_default=None, allow_none=True, validate=validate.Range(min=1, max=MAX_TOKENS)
    )
    max_completion_tokens = JsonInteger(
        load_default=None, allow_none=True, validate=validate.Range(min=1, max=MAX_TOKENS)
    )
    response_format = fields.Nested(ResponseFormatIn, load_default=None, allow_none=True)
    logprobs = Neutral(False, openapi={"type": "boolean", "enum": [False]})
    top_logprobs = Neutral(0, openapi={"type": "integer", "enum": [0]})


class ModelOut(Schema):
    id = fields.String()
    object = fields.Constant("model")
    created = fields.Integer(metadata={"description": "When this server loaded it (Unix time)."})
    owned_by = fields.Constant("modelgate")
    task = fields.String()
    parameters = fields.Integer()
    max_input = fields.Integer()
    device = fields.String()
    schema = fields.Dict(
        metadata={"description": "A handler model's declared inputs, outputs and units."}
    )


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


class ChatMessageOut(Schema):
    role = fields.Constant("assistant")
    content = fields.String()
    refusal = fields.Constant(None)


class ChatChoiceOut(Schema):
    index = fields.Integer()
    message = fields.Nested(ChatMessageOut)
    logprobs = fields.Constant(None)
    finish_reason = fields.String(allow_none=True)


class ChatCompletionOut(Schema):
    id = fields.String()
    object = fields.Constant("chat.completion")
    created = fields.Integer()
    model = fields.String()
    choices = fields.List(fields.Nested(ChatChoiceOut))
    usage = fields.Nested(TokenUsageOut)

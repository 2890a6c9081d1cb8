"""`input` of a response: a string (one user message) or a list of text message items.

Anything but text is refused naming where it is (`input[0].content[1].type`):
images, files, audio, and items other than messages (function calls and outputs,
item references, reasoning).
"""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields

from api.inference.schemas import MAX_MESSAGES, MAX_PROMPT_CHARS

ROLES = ("user", "system", "developer", "assistant")
TEXT_PARTS = ("input_text", "output_text")
NOT_TEXT = "Only text is supported: {} is not (see docs/api.md)."
NO_NUL = "^[^\\x00]*$"


def _text_part(part: Any) -> str:
    if not isinstance(part, dict) or not isinstance(part.get("type"), str):
        raise ValidationError({"type": ["Give a part with a type: input_text or output_text."]})
    if part["type"] not in TEXT_PARTS:
        raise ValidationError({"type": [NOT_TEXT.format(repr(part["type"])[:40])]})
    unknown = sorted(set(part) - {"type", "text", "annotations", "logprobs"})
    if unknown:
        raise ValidationError({unknown[0]: ["Not supported by modelgate (see docs/api.md)."]})
    text = part.get("text")
    if not isinstance(text, str) or len(text) > MAX_PROMPT_CHARS:
        raise ValidationError(
            {"text": [f"Give a string of at most {MAX_PROMPT_CHARS} characters."]}
        )
    return text


def _message(item: Any) -> dict[str, str]:
    """One input item as {"role", "content"}; anything but a text message is refused."""
    if not isinstance(item, dict):
        raise ValidationError(["Give a message: {role, content}."])
    kind = item.get("type", "message")
    if kind != "message":
        raise ValidationError({"type": [NOT_TEXT.format(repr(kind)[:40]) + " Only messages."]})
    unknown = sorted(set(item) - {"type", "role", "content", "id", "status"})
    if unknown:
        raise ValidationError({unknown[0]: ["Not supported by modelgate (see docs/api.md)."]})
    if item.get("role") not in ROLES:
        raise ValidationError({"role": [f"Must be one of: {', '.join(ROLES)}."]})
    content = item.get("content")
    if isinstance(content, str):
        if len(content) > MAX_PROMPT_CHARS:
            raise ValidationError({"content": [f"At most {MAX_PROMPT_CHARS} characters."]})
        return {"role": item["role"], "content": content}
    if not isinstance(content, list) or not 1 <= len(content) <= MAX_MESSAGES:
        raise ValidationError({"content": ["Give a string or a list of text parts."]})
    texts, problems = [], {}
    for index, part in enumerate(content):
        try:
            texts.append(_text_part(part))
        except ValidationError as error:
            problems[index] = error.messages
    if problems:
        raise ValidationError({"content": problems})
    return {"role": item["role"], "content": "".join(texts)}


class ResponseInput(fields.Field):
    """`input`: a string (one user message) or a list of message items, loaded as messages."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list:
        if isinstance(value, str):
            if len(value) > MAX_PROMPT_CHARS:
                raise ValidationError(f"At most {MAX_PROMPT_CHARS} characters.")
            return [{"role": "user", "content": value}]
        if not isinstance(value, list) or not 1 <= len(value) <= MAX_MESSAGES:
            raise ValidationError(f"Give a string or a list of 1 to {MAX_MESSAGES} messages.")
        messages, problems = [], {}
        for index, item in enumerate(value):
            try:
                messages.append(_message(item))
            except ValidationError as error:
                problems[index] = error.messages
        if problems:
            raise ValidationError(problems)
        return messages

    def openapi_property(self) -> dict[str, Any]:
        text = {"type": "string", "maxLength": MAX_PROMPT_CHARS, "pattern": NO_NUL}
        part = {
            "type": "object",
            "required": ["type", "text"],
            "additionalProperties": False,
            "properties": {"type": {"type": "string", "enum": list(TEXT_PARTS)}, "text": text},
        }
        parts = {"type": "array", "items": part, "minItems": 1, "maxItems": MAX_MESSAGES}
        message = {
            "type": "object",
            "required": ["role", "content"],
            "additionalProperties": False,
            "properties": {
                "type": {"type": "string", "enum": ["message"]},
                "role": {"type": "string", "enum": list(ROLES)},
                "content": {"oneOf": [text, parts]},
            },
        }
        items = {"type": "array", "items": message, "minItems": 1, "maxItems": MAX_MESSAGES}
        return {"oneOf": [text, items]}

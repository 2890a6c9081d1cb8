"""The custom fields of the inference schemas: OpenAI's loose shapes, loaded one way.

`StringOrList` (a string or a list of strings, loaded as a list), `EmbeddingInput`
(that, or token ids) and `Neutral` (an OpenAI option accepted only at the value that
changes nothing here); each documents itself in the OpenAPI document.
"""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields

MAX_TOKEN_ID = 2**31 - 1  # the model's vocabulary is the real bound (422 past it)


class StringOrList(fields.Field):
    """A string or a list of strings, always loaded as a list."""

    SHAPE = "Give a string or a list of strings."

    def __init__(self, *, max_items: int, max_chars: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_items, self.max_chars = max_items, max_chars

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[str]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            raise ValidationError(self.SHAPE)
        if not items or len(items) > self.max_items:
            raise ValidationError(f"Give 1 to {self.max_items} strings.")
        long = [i for i, item in enumerate(items) if len(item) > self.max_chars]
        if long:
            raise ValidationError(
                f"Each string may have at most {self.max_chars} characters (too long: {long})."
            )
        return items

    def openapi_property(self) -> dict[str, Any]:
        text = {"type": "string", "maxLength": self.max_chars, "pattern": "^[^\\x00]*$"}
        return {
            "oneOf": [
                text,
                {"type": "array", "items": text, "minItems": 1, "maxItems": self.max_items},
            ]
        }


def _is_token_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOKEN_ID


class EmbeddingInput(StringOrList):
    """OpenAI's embedding `input`: a string, a list of strings, one list of token ids, or a
    list of token-id lists; loaded as a list whose items are strings or token-id lists.

    Token ids are the model's own tokenizer's, without special tokens (the model adds
    them, as for text); `EmbeddingIn` turns them into text the model reads the same.
    """

    SHAPE = "Give a string, a list of strings, a list of token ids or a list of token-id lists."

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list:
        if not isinstance(value, list) or not value or isinstance(value[0], str):
            return super()._deserialize(value, attr, data, **kwargs)
        items = [value] if not isinstance(value[0], list) else value
        if not all(isinstance(item, list) for item in items):
            raise ValidationError(self.SHAPE)
        if len(items) > self.max_items:
            raise ValidationError(f"Give 1 to {self.max_items} token-id lists.")
        problems = {
            index: [f"Give 1 to {self.max_chars} token ids, each 0 to {MAX_TOKEN_ID}."]
            for index, ids in enumerate(items)
            if not ids or len(ids) > self.max_chars or not all(map(_is_token_id, ids))
        }
        if problems:
            raise ValidationError(problems)
        return items

    def openapi_property(self) -> dict[str, Any]:
        ids = {
            "type": "array",
            "items": {"type": "integer", "minimum": 0, "maximum": MAX_TOKEN_ID},
            "minItems": 1,
            "maxItems": self.max_chars,
        }
        texts = super().openapi_property()["oneOf"]
        return {
            "oneOf": [
                *texts,
                ids,
                {"type": "array", "items": ids, "minItems": 1, "maxItems": self.max_items},
            ],
            "description": "Text, or token ids of the model's tokenizer without special tokens.",
        }


class Neutral(fields.Raw):
    """An OpenAI option accepted only at its neutral value(s), which change nothing here."""

    def __init__(self, *values: Any, openapi: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(load_default=None, allow_none=True, **kwargs)
        self.values, self.openapi = values, openapi

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if value not in self.values or isinstance(value, bool) != isinstance(self.values[0], bool):
            shown = " or ".join(repr(v) for v in self.values)
            raise ValidationError(f"Only {shown} is supported (see docs/api.md).")
        return value

    def openapi_property(self) -> dict[str, Any]:
        # OAS 3.0: `nullable` does not add null to an `enum`; list it there too.
        enum = self.openapi.get("enum")
        return {**self.openapi, "nullable": True, **({"enum": [*enum, None]} if enum else {})}

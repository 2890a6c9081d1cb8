"""Request and response schemas of the inference endpoints (OpenAI-compatible shapes)."""

from __future__ import annotations

from marshmallow import Schema, fields


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

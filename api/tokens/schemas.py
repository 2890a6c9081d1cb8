"""Schemas of the token endpoints."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from api.security import ALL_SCOPES

Name = fields.String(required=True, validate=validate.Length(min=1, max=100))


class TokenCreateIn(Schema):
    name = Name
    scopes = fields.List(
        fields.String(validate=validate.OneOf(sorted(ALL_SCOPES))),
        required=True,
        validate=validate.Length(min=1, max=len(ALL_SCOPES)),
    )
    expires_in_days = fields.Integer(
        load_default=None, allow_none=True, validate=validate.Range(min=1, max=365)
    )


class TokenRenameIn(Schema):
    name = Name


class TokenOut(Schema):
    id = fields.Integer()
    name = fields.String()
    prefix = fields.String()
    last_four = fields.String()
    scopes = fields.List(fields.String())
    created_at = fields.DateTime()
    expires_at = fields.DateTime(allow_none=True)
    last_used_at = fields.DateTime(allow_none=True)
    revoked_at = fields.DateTime(allow_none=True)


class TokenCreatedOut(TokenOut):
    token = fields.String(
        attribute="secret", metadata={"description": "The token in clear: shown this once."}
    )


class TokenListOut(Schema):
    data = fields.List(fields.Nested(TokenOut))

"""Schemas of the token endpoints."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from api.access.security import ALL_SCOPES
from api.edge.validation import JsonInteger, RateLimit

DEFAULT_EXPIRY_DAYS = 90

Name = fields.String(required=True, validate=validate.Length(min=1, max=100))


class TokenCreateIn(Schema):
    name = Name
    scopes = fields.List(
        fields.String(validate=validate.OneOf(sorted(ALL_SCOPES))),
        required=True,
        validate=validate.Length(min=1, max=len(ALL_SCOPES)),
    )
    expires_in_days = JsonInteger(
        load_default=DEFAULT_EXPIRY_DAYS,
        allow_none=True,
        validate=validate.Range(min=1, max=365),
        metadata={"description": "Days until it expires (default 90); null: never."},
    )
    rate_limit = RateLimit(
        load_default=None,
        metadata={
            "description": "A limit of this token's own, e.g. '10/minute'; the account's "
            "limit applies as well, so it can only be lower."
        },
    )


class TokenRenameIn(Schema):
    name = Name


class TokenOut(Schema):
    id = fields.Integer()
    name = fields.String()
    prefix = fields.String()
    last_four = fields.String()
    scopes = fields.List(fields.String())
    rate_limit = fields.String(allow_none=True)
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

"""Schemas of the admin endpoints."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from api.auth.models import ROLES
from api.auth.schemas import UserOut
from api.edge.validation import Id, JsonBoolean, RateLimit


class UserListArgs(Schema):
    q = fields.String(load_default=None, validate=validate.Length(max=254))
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100_000))
    per_page = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))


class AdminUserOut(UserOut):
    disabled = fields.Function(lambda user: user.disabled_at is not None)
    disabled_at = fields.DateTime(allow_none=True)
    rate_limit = fields.String(allow_none=True)


class UserPageOut(Schema):
    items = fields.List(fields.Nested(AdminUserOut))
    page = fields.Integer()
    per_page = fields.Integer()
    total = fields.Integer()


class UserUpdateIn(Schema):
    role = fields.String(validate=validate.OneOf(ROLES))
    disabled = JsonBoolean()
    rate_limit = RateLimit(
        metadata={"description": "e.g. '100/minute;10000/day'; null restores the default"},
    )


class AdminUsageArgs(Schema):
    days = fields.Integer(load_default=30, validate=validate.Range(min=1, max=366))
    user = Id(load_default=None)


class AdminSettingsOut(Schema):
    kibana_url = fields.String(
        allow_none=True,
        metadata={"description": "Kibana's base URL (KIBANA_URL); null when not configured."},
    )

"""Request validation at the edge: the blueprint class every feature uses.

flask-smorest parses bodies and query strings with webargs and marshmallow; this
parser answers a failure with 400 (not webargs' 422), which `api.errors` turns
into the one error shape with each field named in `details`.
"""

from __future__ import annotations

import http
from typing import Any

import flask_smorest
from limits import parse_many
from marshmallow import ValidationError, fields, validate
from webargs.flaskparser import FlaskParser

from api.guards import MAX_ID


class Parser(FlaskParser):
    DEFAULT_VALIDATION_STATUS = 400


class Blueprint(flask_smorest.Blueprint):
    """A flask-smorest blueprint whose validation errors are 400s."""

    ARGUMENTS_PARSER = Parser()

    def errors(self, *statuses: int):  # type: ignore[no-untyped-def]
        """Document the error statuses a view raises itself (each with the Error component)."""

        def decorator(view):  # type: ignore[no-untyped-def]
            for status in statuses:
                view = self.alt_response(status, response=http.HTTPStatus(status).name)(view)
            return view

        return decorator


class Id(fields.Integer):
    """A row id: 1 up to the largest an id column holds (32 bits on PostgreSQL)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(validate=validate.Range(min=1, max=MAX_ID), **kwargs)


class RateLimit(fields.String):
    """A Flask-Limiter limit string such as '100/minute;10000/day', or null."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("allow_none", True)
        super().__init__(validate=validate.Length(max=100), **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            parse_many(text)
        except ValueError:
            raise ValidationError(
                "Not a rate limit; use e.g. '100/minute;10000/day', or null for the default."
            ) from None
        return text

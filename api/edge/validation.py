"""Request validation at the edge: the blueprint class every feature uses.

flask-smorest parses bodies and query strings with webargs and marshmallow; this
parser answers a failure with 400 (not webargs' 422), which `api.edge.errors` turns
into the one error shape with each field named in `details`.
"""

from __future__ import annotations

import http
from typing import Any

import flask_smorest
from limits import parse_many
from marshmallow import ValidationError, fields, missing, validate
from webargs.flaskparser import FlaskParser
from werkzeug.datastructures import MultiDict
from werkzeug.routing import IntegerConverter

from api.edge.guards import MAX_ID


class Parser(FlaskParser):
    DEFAULT_VALIDATION_STATUS = 400
    __location_map__ = {**FlaskParser.__location_map__, "multipart": "load_multipart"}

    def load_multipart(self, req: Any, schema: Any) -> Any:
        """A multipart body: its form fields and its file parts together."""
        merged = MultiDict(req.form)
        merged.update(req.files)
        return self._makeproxy(merged, schema)

    def load_json(self, req: Any, schema: Any) -> Any:
        """The JSON body; its absence is a 400 (the document marks every body required)."""
        data = super().load_json(req, schema)
        if data is missing:
            raise ValidationError({"_body": ["Send a JSON body."]})
        return data


class Blueprint(flask_smorest.Blueprint):
    """A flask-smorest blueprint whose validation errors are 400s."""

    ARGUMENTS_PARSER = Parser()
    DEFAULT_LOCATION_CONTENT_TYPE_MAPPING = {
        **flask_smorest.Blueprint.DEFAULT_LOCATION_CONTENT_TYPE_MAPPING,
        "multipart": "multipart/form-data",
    }

    def errors(self, *statuses: int):  # type: ignore[no-untyped-def]
        """Document the error statuses a view raises itself (each with the Error component)."""

        def decorator(view):  # type: ignore[no-untyped-def]
            for status in statuses:
                view = self.alt_response(status, response=http.HTTPStatus(status).name)(view)
            return view

        return decorator


class JsonInteger(fields.Integer):
    """An integer in a JSON body: a JSON number with no fraction, never a string or a boolean."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)

    def _validated(self, value: Any) -> Any:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        return super()._validated(value)


class JsonFloat(fields.Float):
    """A number in a JSON body: never a string or a boolean."""

    def _validated(self, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.make_error("invalid")
        return super()._validated(value)


class JsonBoolean(fields.Boolean):
    """`true` or `false` in a JSON body: never 0, 1 or a string."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class IdConverter(IntegerConverter):
    """`<id:name>`: a row id in a path. Any digits match, so api/edge/guards.py can answer an
    out-of-range id with a 400 naming it; the document gives the range."""


def id_parameter_schema(_converter: IdConverter) -> dict[str, Any]:
    return {"type": "integer", "minimum": 1, "maximum": MAX_ID}


class Id(fields.Integer):
    """A row id: 1 up to the largest an id column holds (32 bits on PostgreSQL)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(validate=validate.Range(min=1, max=MAX_ID), **kwargs)


_AMOUNT = "[0-9]{1,9} *(/| per ) *([0-9]{1,9} *)?(second|minute|hour|day|month|year)s?"
RATE_LIMIT_PATTERN = f"^{_AMOUNT}( *[;,] *{_AMOUNT})*$"


class RateLimit(fields.String):
    """A Flask-Limiter limit string such as '100/minute;10000/day', or null."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("allow_none", True)
        checks = [
            validate.Length(max=100),
            validate.Regexp(RATE_LIMIT_PATTERN, error="Not a rate limit; use e.g. '100/minute'."),
        ]
        super().__init__(validate=checks, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            parse_many(text)
        except ValueError:
            raise ValidationError(
                "Not a rate limit; use e.g. '100/minute;10000/day', or null for the default."
            ) from None
        return text


def init_app(app: Any, api: flask_smorest.Api) -> None:
    """Register the `id` path converter with the app and in the document."""
    app.url_map.converters["id"] = IdConverter
    api.register_converter(IdConverter, id_parameter_schema)

"""Request validation at the edge: the blueprint class every feature uses.

flask-smorest parses bodies and query strings with webargs and marshmallow; this
parser answers a failure with 400 (not webargs' 422), which `api.errors` turns
into the one error shape with each field named in `details`.
"""

from __future__ import annotations

import flask_smorest
from webargs.flaskparser import FlaskParser


class Parser(FlaskParser):
    DEFAULT_VALIDATION_STATUS = 400


class Blueprint(flask_smorest.Blueprint):
    """A flask-smorest blueprint whose validation errors are 400s."""

    ARGUMENTS_PARSER = Parser()

"""Checks every request passes before a view runs: body size, content type, valid JSON."""

from __future__ import annotations

from flask import Flask, current_app, request
from werkzeug.exceptions import BadRequest as WerkzeugBadRequest

from api.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

BODY_METHODS = {"POST", "PUT", "PATCH"}


def check_body() -> None:
    """Refuse oversized, non-JSON and malformed bodies on the API with the matching 4xx."""
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    length = request.content_length
    if limit and length is not None and length > limit:
        raise PayloadTooLarge(details={"max_bytes": limit})
    has_body = bool(length) or "chunked" in request.headers.get("Transfer-Encoding", "")
    if request.method not in BODY_METHODS or not has_body or not request.path.startswith("/v1/"):
        return
    if not request.is_json:
        raise UnsupportedMediaType(details={"content_type": request.mimetype or None})
    try:
        request.get_json()
    except WerkzeugBadRequest:
        raise BadRequest("The body is not valid JSON.", code="invalid_json") from None


def init_app(app: Flask) -> None:
    app.before_request(check_body)

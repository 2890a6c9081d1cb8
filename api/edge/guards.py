"""Checks every request passes before a view runs: size, content type, JSON, and safe values.

Beyond the body's size and type, every JSON string (keys included), every query
argument and every path parameter is checked here once, for the whole API, so no
view or database ever sees a value it could choke on: lone UTF-16 surrogates (they
cannot be encoded), NUL bytes (PostgreSQL text refuses them), JSON nested deeper
than `MAX_JSON_DEPTH`, and ids no id column can hold. (werkzeug decodes a path as
UTF-8 with replacement, `%ff` becomes U+FFFD, so in a path only `%00` can do harm.)
Each is a 400 that names the field, except a bad key of a JSON object when nothing
else is wrong: that is a 422, because OpenAPI 3.0 cannot constrain the keys of a
free-form object (batch `metadata`), so the document allows what the service refuses;
for the same reason every such problem in a predict body (a model's inputs may be
free-form JSON) is a 422.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import BadRequest as WerkzeugBadRequest
from werkzeug.exceptions import MethodNotAllowed

from api.edge.errors import (
    BadRequest,
    PayloadTooLarge,
    Unprocessable,
    UnsupportedMediaType,
    ValidationFailed,
)

BODY_METHODS = {"POST", "PUT", "PATCH"}
MAX_JSON_DEPTH = 32
MAX_ID = 2**31 - 1
UPLOAD_PATHS = {"/v1/files"}
# A handler model's predict, JSON or multipart (issue 26), and the Open Inference Protocol's
# infer, JSON and binary tensors (issue 27): bodies up to PREDICT_MAX_BYTES.
PREDICT_PATH = re.compile(
    r"/v1/models/[^/]{1,64}/predict|/v2/models/[^/]{1,64}(/versions/[^/]{1,64})?/infer"
)
# What an upload's multipart framing (boundaries, part headers, `purpose`) may add to its
# file: nginx allows the same (deploy/nginx_site.py), so a file of FILE_MAX_BYTES fits.
MULTIPART_HEADROOM = 64 * 1024  # ids are INTEGER columns: 32 bits on PostgreSQL


def string_problem(value: str) -> str | None:
    """Why a string cannot be accepted, or None when it is fine."""
    if "\x00" in value:
        return "Must not contain NUL characters."
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "Must be valid Unicode (no lone surrogates)."
    return None


def _walk(
    value: Any, path: str, depth: int, problems: dict[str, list[str]], keys: dict[str, list[str]]
) -> None:
    if depth > MAX_JSON_DEPTH:
        problems[path or "_body"] = [f"Nested deeper than {MAX_JSON_DEPTH} levels."]
        return
    if isinstance(value, str):
        problem = string_problem(value)
        if problem:
            problems[path or "_body"] = [problem]
    elif isinstance(value, dict):
        for key, item in value.items():
            key_problem = string_problem(key)
            name = f"{path}.{key}" if path else key
            if key_problem:
                keys[path or "_body"] = [f"A key: {key_problem.lower()}"]
                continue
            _walk(item, name, depth + 1, problems, keys)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            name = f"{path}[{index}]" if path else f"[{index}]"
            _walk(item, name, depth + 1, problems, keys)


def _by_field(problems: dict[str, list[str]]) -> dict[str, list[str]]:
    details: dict[str, list[str]] = {}
    for path, messages in problems.items():
        details.setdefault(_field_name(path), []).extend(
            f"{path}: {message}" if path != _field_name(path) else message for message in messages
        )
    return details


def _field_name(path: str) -> str:
    """`input[3]` -> `input`, `stream_options.include_usage` -> `stream_options`."""
    return path.split(".", 1)[0].split("[", 1)[0] or path


def check_json(body: Any) -> None:
    """Raise ValidationFailed (or, for bad keys alone, Unprocessable) naming each field."""
    problems: dict[str, list[str]] = {}
    keys: dict[str, list[str]] = {}
    _walk(body, "", 0, problems, keys)
    if problems:
        raise ValidationFailed(details=_by_field({**keys, **problems}))
    if keys:
        raise Unprocessable("An object key cannot be stored.", details=_by_field(keys))


def _takes_upload() -> bool:
    """Uploads are the one multipart body the API takes: `POST /v1/files`."""
    return request.method == "POST" and request.path in UPLOAD_PATHS


def _takes_predict() -> bool:
    """A handler model's predict: JSON, or multipart with files, up to PREDICT_MAX_BYTES."""
    return request.method == "POST" and PREDICT_PATH.fullmatch(request.path) is not None


def check_body() -> None:
    """Refuse oversized, non-JSON, malformed and unsafe bodies on the API with the matching 4xx."""
    upload, predict = _takes_upload(), _takes_predict()
    setting = "FILE_MAX_BYTES" if upload else "PREDICT_MAX_BYTES" if predict else None
    limit = current_app.config[setting or "MAX_CONTENT_LENGTH"]
    if upload or predict:  # the files may be that large; the form around them takes a little more
        limit += MULTIPART_HEADROOM
        request.max_content_length = limit  # what werkzeug's multipart parser may read
    length = request.content_length
    if limit and length is not None and length > limit:
        raise PayloadTooLarge(details={"max_bytes": limit})
    if not request.path.startswith("/v1/") or isinstance(
        request.routing_exception, MethodNotAllowed
    ):
        return  # a method the path does not take answers 405, whatever its body
    check_query_and_path()
    has_body = bool(length) or "chunked" in request.headers.get("Transfer-Encoding", "")
    if request.method not in BODY_METHODS or not has_body:
        return
    if upload:
        if request.mimetype != "multipart/form-data":
            raise UnsupportedMediaType(
                "Send the file as multipart/form-data.",
                details={"content_type": request.mimetype or None},
            )
        return
    if predict and request.mimetype == "multipart/form-data":
        return  # the route checks each field against the model's declaration
    if not request.is_json:
        raise UnsupportedMediaType(details={"content_type": request.mimetype or None})
    try:
        body = request.get_json()
    except RecursionError:
        raise ValidationFailed(
            details={"_body": [f"Nested deeper than {MAX_JSON_DEPTH} levels."]}
        ) from None
    except WerkzeugBadRequest:
        raise BadRequest("The body is not valid JSON.", code="invalid_json") from None
    try:
        check_json(body)
    except ValidationFailed as failed:
        if not predict:
            raise
        # A model's inputs may be free-form (the generic predict operation takes any
        # object, a `json` input any object): a NUL deep inside fits the document, so it
        # is refused as the model's 422, as a bad key is everywhere.
        raise Unprocessable(failed.message, details=failed.details) from None


def check_query_and_path() -> None:
    """Query arguments and string path parameters must be safe; integer ones must fit an id."""
    problems: dict[str, list[str]] = {}
    for name, values in request.args.lists():
        name_problem = string_problem(name)
        if name_problem:
            problems["_query"] = [f"A parameter name: {name_problem}"]
            continue
        problem = next(filter(None, map(string_problem, values)), None)
        if problem:
            problems[name] = [problem]
        elif len(values) > 1:
            problems[name] = ["Give this parameter once."]
    for name, value in (request.view_args or {}).items():
        if isinstance(value, str):
            problem = string_problem(value)
            if problem:
                problems[name] = [problem]
        elif isinstance(value, int) and not 0 < value <= MAX_ID:
            problems[name] = [f"Must be between 1 and {MAX_ID}."]
    if problems:
        raise ValidationFailed(details=problems)


def drain_body(response: Response) -> Response:
    """Read what is left of a body within its cap before answering (any answer).

    A call refused before its body was read (401, 403, an unknown model's 404) was
    answered while nginx was still sending it: gunicorn then closed a socket with
    unread data, the reset was nginx's 502, and nginx took the host out of rotation for
    its `fail_timeout` (the nginx test saw a 3 MB predict to an unknown model do that,
    then 10 s of 503s). A body over its cap is still refused unread (the 413 above).
    """
    length = request.content_length
    limit = request.max_content_length
    if not length or (limit is not None and length > limit):
        return response
    with contextlib.suppress(Exception):  # the client went away: nothing left to drain
        stream = request.stream
        while stream.read(64 * 1024):
            pass
    return response


def init_app(app: Flask) -> None:
    app.before_request(check_body)
    app.after_request(drain_body)

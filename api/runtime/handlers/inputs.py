"""Check one predict request against the model's declared inputs, in the gunicorn worker.

Cheap checks only: types, lengths, ranges, tensor shapes, and for images their
byte size, format and pixel count read from the file's header (Pillow's `open` reads
no pixel data). Nothing is decoded here; the model's process decodes (`decoding`)
with the same limits. Every problem (a missing, unknown or mistyped field, a tensor
of the wrong shape, an image that is empty, too large, of another format or with too
many pixels) is a 422 in the one error shape with `details` naming each field: the
generic predict operation of the OpenAPI document takes any object, so such a body
fits it but not the model. A ready model's own operation (`openapi`) says the same
rules in JSON Schema; `tests/handlers/test_openapi.py` checks that the two agree.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
import re
import warnings
from dataclasses import dataclass, field
from typing import Any

from api.edge.errors import Unprocessable
from api.runtime.handlers.declarations import Declaration, FieldSpec
from api.runtime.handlers.openapi import int_range

_DATA_URL = re.compile(r"data:([\w.+-]+/[\w.+-]+)?(;[\w=.+-]+)*;base64,", re.ASCII)
_FALSE, _TRUE = {"false", "0", "no", "off"}, {"true", "1", "yes", "on"}


@dataclass
class Checked:
    """A request that passed: JSON-ready values and each image's bytes, by field name."""

    values: dict[str, Any] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)


class _Bad(Exception):
    """One field's problem: `status` 400 (shape of the request) or 422 (its content)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def check_request(
    declaration: Declaration,
    fields: dict[str, Any],
    files: dict[str, bytes] | None = None,
    *,
    from_form: bool = False,
) -> Checked:
    """Check `fields` (parsed JSON, or with `from_form` multipart values) and `files`.

    `files` holds multipart uploads by field name; a multipart form's other values
    arrive as strings and are read as the declared kind says. A JSON body's values
    must already have their kind's JSON type.
    """
    files = files or {}
    problems: dict[str, list[str]] = {}
    checked = Checked()
    for name in sorted((set(fields) | set(files)) - {spec.name for spec in declaration.inputs}):
        known = ", ".join(spec.name for spec in declaration.inputs)
        problems[name] = [f"Unknown field; {declaration.model_id} takes {known}."]
    for spec in declaration.inputs:
        try:
            if spec.name in files:
                _check_file(spec, files[spec.name], checked)
            elif spec.name in fields:
                _check_value(spec, fields[spec.name], checked, from_form)
            elif spec.required:
                raise _Bad("Missing data for required field.")
            else:
                checked.values[spec.name] = spec.default
        except _Bad as bad:
            problems[spec.name] = [str(bad)]
    if problems:
        # The generic operation takes any object for any model: a request that does not
        # fit this model's declaration fits the document but not the model, the house's 422.
        raise Unprocessable(_first(problems), details=problems)
    return checked


def _first(problems: dict[str, list[str]]) -> str:
    name, messages = next(iter(problems.items()))
    return f"{name}: {messages[0]}"


def _check_file(spec: FieldSpec, data: bytes, checked: Checked) -> None:
    if spec.kind == "image":
        checked.blobs[spec.name] = check_image(spec, data)
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _Bad(f"Give {_a(spec.kind)} as UTF-8 text, not a binary file.") from None
    _check_value(spec, text, checked, True)


def _check_value(spec: FieldSpec, value: Any, checked: Checked, from_form: bool) -> None:
    kind = spec.kind
    if kind == "image":
        checked.blobs[spec.name] = check_image(spec, _image_bytes(value))
        return
    if from_form and isinstance(value, str) and kind != "text":
        value = _from_form(spec, value)
    if kind == "text":
        if not isinstance(value, str):
            raise _Bad("Not a valid string.")
        if len(value) > spec.limits["max_length"]:
            raise _Bad(f"Longer than {spec.limits['max_length']} characters.")
    elif kind == "number":
        value = _check_number(spec, value)
    elif kind == "boolean":
        if not isinstance(value, bool):
            raise _Bad("Not a valid boolean.")
    elif kind == "json":
        if not isinstance(value, dict):
            raise _Bad("Not a JSON object.")
        if len(json.dumps(value, separators=(",", ":"))) > spec.limits["max_bytes"]:
            raise _Bad(f"Larger than {spec.limits['max_bytes']} bytes.")
    elif kind == "tensor":
        check_tensor(spec, value)
    checked.values[spec.name] = value


def _a(kind: str) -> str:
    return {"json": "a JSON object", "tensor": "a tensor"}.get(kind, f"a {kind}")


def _from_form(spec: FieldSpec, text: str) -> Any:
    """A multipart value (always text) read as its declared kind."""
    if spec.kind == "boolean":
        lowered = text.strip().lower()
        if lowered in _TRUE | _FALSE:
            return lowered in _TRUE
        raise _Bad("Not a valid boolean.")
    if spec.kind == "number":
        try:
            return float(text) if not spec.limits["integer"] else int(text)
        except ValueError:
            raise _Bad("Not a valid number.") from None
    try:
        return json.loads(text)
    except ValueError:
        raise _Bad(f"Not valid JSON for {_a(spec.kind)}.") from None


def _finite(value: Any) -> bool:
    """A JSON number that fits a float (a 400-digit integer does not)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _check_number(spec: FieldSpec, value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not _finite(value):
        raise _Bad("Not a valid number.")
    if spec.limits["integer"]:
        if value != int(value):
            raise _Bad("Not a valid integer.")
        value = int(value)
    low, high = spec.limits["minimum"], spec.limits["maximum"]
    if low is not None and value < low:
        raise _Bad(f"Must be at least {low}.")
    if high is not None and value > high:
        raise _Bad(f"Must be at most {high}.")
    return value


def check_tensor(spec: FieldSpec, value: Any) -> None:
    """A nested list of numbers of the declared shape (-1: any size) and dtype family."""
    shape: list[int] = []
    probe = value
    while isinstance(probe, list):
        shape.append(len(probe))
        if not probe:
            break
        probe = probe[0]
    declared = spec.limits["shape"]
    expected = "[" + ", ".join("any" if size == -1 else str(size) for size in declared) + "]"
    if len(shape) != len(declared) or any(
        size not in (want, -1) and want != -1 for size, want in zip(shape, declared, strict=False)
    ):
        raise _Bad(f"Expected a tensor of shape {expected}, got {shape or 'a scalar'}.")
    if math.prod(shape) > spec.limits["max_elements"]:
        raise _Bad(f"More than {spec.limits['max_elements']} elements.")
    _check_rows(value, shape, 0, spec.limits["dtype"], expected)


def _check_element(value: Any, dtype: str) -> None:
    if dtype == "bool":
        if not isinstance(value, bool):
            raise _Bad("Tensor elements must be booleans.")
        return
    bounds = int_range(dtype)
    if bounds is not None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Bad("Tensor elements must be integers.")
        if not bounds[0] <= value <= bounds[1]:
            raise _Bad(f"Tensor elements must be {bounds[0]} to {bounds[1]} ({dtype}).")
    elif isinstance(value, bool) or not isinstance(value, int | float) or not _finite(value):
        raise _Bad("Tensor elements must be numbers.")


def _check_rows(value: Any, shape: list[int], depth: int, dtype: str, expected: str) -> None:
    if depth == len(shape):
        _check_element(value, dtype)
        return
    if not isinstance(value, list) or len(value) != shape[depth]:
        raise _Bad(f"Expected a tensor of shape {expected}; its rows differ in length.")
    for item in value:
        _check_rows(item, shape, depth + 1, dtype, expected)


def _image_bytes(value: Any) -> bytes:
    """A JSON image: base64 text or a `data:` URL."""
    if not isinstance(value, str):
        raise _Bad("Give the image as base64 text or a data: URL (or upload it as a file).")
    match = _DATA_URL.match(value)
    encoded = value[match.end() :] if match else value
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise _Bad("Not valid base64 (or a data: URL with base64 content).") from None


def check_image(spec: FieldSpec, data: bytes) -> bytes:
    """`data` if it is a non-empty image of an allowed format and size; reads only the header."""
    from PIL import Image, UnidentifiedImageError

    limits = spec.limits
    if not data:
        raise _Bad("The image is empty.", 422)
    if len(data) > limits["max_bytes"]:
        raise _Bad(f"The image is {len(data)} bytes; at most {limits['max_bytes']}.", 422)
    formats = ", ".join(limits["formats"])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:  # the header only: no pixel is read
                kind, (width, height) = (image.format or "").lower(), image.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _Bad(f"The image has more than {limits['max_pixels']} pixels.", 422) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise _Bad(f"Not an image this model reads ({formats}).", 422) from None
    if kind not in limits["formats"]:
        raise _Bad(f"A {kind.upper()} image; give one of {formats}.", 422)
    if width * height > limits["max_pixels"]:
        raise _Bad(
            f"The image is {width} x {height} pixels ({width * height}); "
            f"at most {limits['max_pixels']}.",
            422,
        )
    return data

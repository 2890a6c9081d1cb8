"""The OpenAPI schemas of one handler model's predict route, made from its declaration.

`request_body(declaration)` gives the JSON and multipart/form-data bodies,
`outputs_schema(declaration)` the `outputs` object of its answer. They are as exact as
JSON Schema allows: every field with its kind's type and limits (`maxLength`,
`minimum`/`maximum`, integers, nested arrays of the declared shape, base64 or
`data:` URL text for an image in JSON, a binary file in a form), `required` and no
other property. What JSON Schema cannot say — the pixels of an image, rows of one
tensor of equal length, the byte size of a JSON object — the route still checks (a
422 naming the field). Plain data, no Flask: the served document adds one operation
per ready model (`api.inference.predict`).
"""

from __future__ import annotations

import math
from typing import Any

from api.runtime.handlers.declarations import Declaration, FieldSpec

NO_NUL = "^[^\\x00]*$"  # api/edge/guards.py refuses NUL in every string
# Base64 (padded) after an optional `data:[type];base64,` prefix, as `inputs` reads it.
BASE64_OR_DATA_URL = (
    "^(data:([A-Za-z0-9_.+-]+/[A-Za-z0-9_.+-]+)?(;[A-Za-z0-9_=.+-]+)*;base64,)?"
    "([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
)
DATA_URL_ALLOWANCE = 256  # characters a `data:` prefix may add to an image's base64
_INT_RANGES = {
    "int8": (-(2**7), 2**7 - 1),
    "uint8": (0, 2**8 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
}


def int_range(dtype: str) -> tuple[int, int] | None:
    """The values an integer dtype holds, or None for floats and bool."""
    return _INT_RANGES.get(dtype)


def _element(dtype: str) -> dict[str, Any]:
    if dtype == "bool":
        return {"type": "boolean"}
    bounds = int_range(dtype)
    if bounds is None:
        return {"type": "number"}
    return {"type": "integer", "minimum": bounds[0], "maximum": bounds[1]}


def tensor_schema(spec: FieldSpec) -> dict[str, Any]:
    """Nested arrays, one level per dimension: a fixed size exactly, `-1` any size."""
    shape = spec.limits["shape"]
    schema = _element(spec.limits["dtype"])
    for depth in reversed(range(len(shape))):
        size = shape[depth]
        array: dict[str, Any] = {"type": "array", "items": schema}
        if size == -1:
            array["maxItems"] = spec.limits["max_elements"]
            if depth < len(shape) - 1:  # an empty row hides the sizes below it
                array["minItems"] = 1
        else:
            array["minItems"] = array["maxItems"] = size
        schema = array
    return schema


def _number(spec: FieldSpec) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer" if spec.limits["integer"] else "number"}
    for key in ("minimum", "maximum"):
        if spec.limits[key] is not None:
            schema[key] = spec.limits[key]
    return schema


def input_schema(spec: FieldSpec, *, form: bool) -> dict[str, Any]:
    """One declared input as a JSON body property, or with `form` as a multipart part."""
    kind, limits = spec.kind, spec.limits
    shape = ", ".join("any" if size == -1 else str(size) for size in limits.get("shape", ()))
    schema: dict[str, Any]
    if kind == "text":
        schema = {"type": "string", "maxLength": limits["max_length"], "pattern": NO_NUL}
    elif kind == "image":
        formats = ", ".join(limits["formats"]).upper()
        if form:
            schema = {"type": "string", "format": "binary"}
        else:
            encoded = 4 * math.ceil(limits["max_bytes"] / 3) + DATA_URL_ALLOWANCE
            schema = {"type": "string", "pattern": BASE64_OR_DATA_URL, "maxLength": encoded}
        schema["description"] = (
            f"An image ({formats}) of at most {limits['max_bytes']} bytes and "
            f"{limits['max_pixels']} pixels" + ("." if form else ", as base64 or a data: URL.")
        )
    elif kind == "number":
        schema = _number(spec)
    elif kind == "boolean":
        schema = {"type": "boolean"}
    elif kind == "json" and not form:
        schema = {"type": "object", "description": f"At most {limits['max_bytes']} bytes."}
    elif kind == "tensor" and not form:
        schema = tensor_schema(spec)
        schema["description"] = f"A {limits['dtype']} tensor of shape [{shape}]."
    else:  # a JSON object or tensor in a form: its JSON text
        what = "a JSON object" if kind == "json" else f"a {limits['dtype']} tensor [{shape}]"
        schema = {"type": "string", "pattern": NO_NUL, "description": f"JSON text: {what}."}
    if spec.description:
        schema["description"] = (spec.description + " " + schema.get("description", "")).strip()
    if not spec.required and spec.default is not None:
        schema["default"] = spec.default
    return schema


def inputs_schema(declaration: Declaration, *, form: bool) -> dict[str, Any]:
    """The body: each declared input, the required ones required, nothing else."""
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {spec.name: input_schema(spec, form=form) for spec in declaration.inputs},
        "additionalProperties": False,
    }
    required = [spec.name for spec in declaration.inputs if spec.required]
    if required:
        schema["required"] = required
    return schema


def request_body(declaration: Declaration) -> dict[str, Any]:
    """The predict operation's `requestBody`: JSON (images as base64) or a multipart form."""
    form = inputs_schema(declaration, form=True)
    encoding = {
        spec.name: {"contentType": "application/octet-stream"}
        for spec in declaration.inputs
        if spec.kind == "image"
    }
    multipart: dict[str, Any] = {"schema": form}
    if encoding:
        multipart["encoding"] = encoding
    json_body: dict[str, Any] = {"schema": inputs_schema(declaration, form=False)}
    example = example_inputs(declaration)
    if example is not None:
        json_body["example"] = example
    return {
        "required": True,
        "content": {"application/json": json_body, "multipart/form-data": multipart},
    }


def output_schema(spec: FieldSpec) -> dict[str, Any]:
    """One declared output as the answer gives it (`decoding.encode_outputs`)."""
    schema: dict[str, Any]
    if spec.kind == "text":
        schema = {"type": "string"}
    elif spec.kind == "image":
        schema = {"type": "string", "pattern": "^data:image/png;base64,"}
    elif spec.kind == "number":
        schema = {"type": "integer" if spec.limits["integer"] else "number"}
    elif spec.kind == "boolean":
        schema = {"type": "boolean"}
    elif spec.kind == "tensor":
        schema = tensor_schema(spec)
        for level in _levels(schema):  # `max_elements` bounds inputs, not outputs
            if level.get("minItems") != level.get("maxItems"):
                del level["maxItems"]
    else:  # json: whatever JSON the handler returns
        schema = {}
    if spec.description:
        schema["description"] = spec.description
    if not spec.required:
        schema["nullable"] = True
    return schema


def _levels(schema: dict[str, Any]) -> list[dict[str, Any]]:
    levels = []
    while schema.get("type") == "array":
        levels.append(schema)
        schema = schema["items"]
    return levels


def outputs_schema(declaration: Declaration) -> dict[str, Any]:
    """The answer's `outputs`: every declared output (an optional one may be null)."""
    return {
        "type": "object",
        "properties": {spec.name: output_schema(spec) for spec in declaration.outputs},
        "required": [spec.name for spec in declaration.outputs],
        "additionalProperties": False,
    }


WHITE_PIXEL_PNG = (
    "data:image/png;base64,"
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4//8/AAX+Av4N70a4AAAAAElFTkSuQmCC"
)


def _example(spec: FieldSpec) -> Any:
    limits = spec.limits
    if not spec.required and spec.default is not None:
        return spec.default
    if spec.kind == "text":
        return "text"[: limits["max_length"]]
    if spec.kind == "number":
        low, high = limits["minimum"], limits["maximum"]
        value = low if low is not None else (min(0, high) if high is not None else 0)
        return math.ceil(value) if limits["integer"] else value
    if spec.kind == "boolean":
        return False
    if spec.kind == "json":
        return {}
    if spec.kind == "tensor":
        tensor: Any = False if limits["dtype"] == "bool" else 0
        for size in reversed(limits["shape"]):
            tensor = [tensor] * (1 if size == -1 else size)
        return tensor if math.prod(max(size, 1) for size in limits["shape"]) <= 64 else None
    return WHITE_PIXEL_PNG if "png" in limits["formats"] else None


def example_inputs(declaration: Declaration) -> dict[str, Any] | None:
    """A JSON body that fits the declaration (a white 1 x 1 PNG for images), or None."""
    example = {}
    for spec in declaration.inputs:
        if not spec.required:
            continue
        value = _example(spec)
        if value is None:
            return None
        example[spec.name] = value
    return example


def operation_id(model_id: str, taken: set[str]) -> str:
    """`predict_<model id>` with every other character as `_`, unique among `taken`."""
    base = "predict_" + "".join(char if char.isalnum() else "_" for char in model_id)
    name, number = base, 2
    while name in taken:
        name, number = f"{base}_{number}", number + 1
    return name


def model_operation(
    generic: dict[str, Any], model_id: str, declaration: Declaration, taken: set[str]
) -> dict[str, Any]:
    """The generic predict operation made exact for one model (a deep copy; `generic` stays)."""
    import copy

    operation = copy.deepcopy(generic)
    operation["operationId"] = operation_id(model_id, taken)
    operation["summary"] = f"Run {model_id} on one item."
    operation["requestBody"] = request_body(declaration)
    answer = operation["responses"]["200"]
    answer["content"] = {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "model": {"type": "string", "enum": [model_id]},
                    "outputs": outputs_schema(declaration),
                    "usage": {
                        "type": "object",
                        "properties": {
                            "units": {"type": "integer", "minimum": 0},
                            "unit": {"type": "string", "enum": [declaration.units]},
                        },
                        "required": ["units", "unit"],
                    },
                    "trace_id": {"type": "string"},
                },
                "required": ["model", "outputs", "usage", "trace_id"],
            }
        }
    }
    if declaration.streaming:
        answer["content"]["text/event-stream"] = {
            "schema": {
                "type": "string",
                "description": 'With `Accept: text/event-stream`: `data: {"outputs": {...}}` '
                "events as the model makes them, then one with `usage` and `trace_id`, "
                "then `data: [DONE]`.",
            }
        }
    return operation

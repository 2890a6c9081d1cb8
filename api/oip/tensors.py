"""A handler model's declaration as protocol tensors: metadata, items in, outputs out.

Every tensor has a batch dimension first: `[N, ...]` is N items, each one call of the
model's own `predict` path (checked by the same declaration as `/v1/models/{id}/predict`).
Kinds map to datatypes as docs/oip.md says: text, json and image are BYTES (UTF-8 text,
JSON text, the encoded image file), number is FP64 (INT64 when it is `integer`),
boolean is BOOL, a tensor its dtype with its declared shape after the batch dimension.
An image sent in JSON is base64 text (or a `data:` URL), as JSON cannot hold bytes.
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any

from api.edge.errors import APIError
from api.oip.codec import FLOAT_TYPES, INTEGER_TYPES, BadTensor, Tensor
from api.runtime.handlers.declarations import Declaration, FieldSpec

DTYPES = {
    "float16": "FP16",
    "bfloat16": "BF16",
    "float32": "FP32",
    "float64": "FP64",
    "int8": "INT8",
    "uint8": "UINT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "bool": "BOOL",
}
NUMERIC = (*INTEGER_TYPES, *FLOAT_TYPES)


def datatype(spec: FieldSpec) -> str:
    if spec.kind in ("text", "json", "image"):
        return "BYTES"
    if spec.kind == "boolean":
        return "BOOL"
    if spec.kind == "number":
        return "INT64" if spec.limits.get("integer") else "FP64"
    return DTYPES[spec.limits["dtype"]]


def item_shape(spec: FieldSpec) -> list[int]:
    """The shape of one item (after the batch dimension): [] but for tensors."""
    return list(spec.limits["shape"]) if spec.kind == "tensor" else []


def metadata(spec: FieldSpec) -> dict[str, Any]:
    """The protocol's `$metadata_tensor` of a declared input or output."""
    return {"name": spec.name, "datatype": datatype(spec), "shape": [-1, *item_shape(spec)]}


def _accepts(spec: FieldSpec, given: str) -> bool:
    wanted = datatype(spec)
    if wanted in ("BYTES", "BOOL"):
        return given == wanted
    return given in NUMERIC  # numbers are converted; a tensor's elements checked by its dtype


def _nest(flat: list[Any], shape: list[int]) -> Any:
    """`flat` (row-major) as nested lists of `shape`."""
    if not shape:
        return flat[0]
    if len(shape) == 1:
        return list(flat)
    step = math.prod(shape[1:])
    return [_nest(flat[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]


def split_items(
    declaration: Declaration, tensors: list[Tensor], max_items: int
) -> list[tuple[dict[str, Any], dict[str, bytes]]]:
    """The request's tensors as N items of (JSON-ready fields, image files) for `predict`."""
    known = {spec.name: spec for spec in declaration.inputs}
    unknown = [tensor.name for tensor in tensors if tensor.name not in known]
    if unknown:
        names = ", ".join(known)
        raise BadTensor(
            f"input {unknown[0]}: {declaration.model_id} has no such input; it takes {names}."
        )
    given = {tensor.name for tensor in tensors}
    missing = [spec.name for spec in declaration.inputs if spec.required and spec.name not in given]
    if missing:
        raise BadTensor(f"input {missing[0]}: missing; {declaration.model_id} needs it.")
    sizes = set()
    for tensor in tensors:
        spec = known[tensor.name]
        if not _accepts(spec, tensor.datatype):
            raise BadTensor(
                f"input {tensor.name}: datatype {tensor.datatype}; give {datatype(spec)}."
            )
        rank = len(item_shape(spec)) + 1
        scalar_column = rank == 1 and len(tensor.shape) == 2 and tensor.shape[1] == 1
        if len(tensor.shape) != rank and not scalar_column:
            shape = [-1, *item_shape(spec)]
            raise BadTensor(
                f"input {tensor.name}: shape {tensor.shape}; give {shape} (batch first)."
            )
        sizes.add(tensor.shape[0])
    if len(sizes) != 1:
        raise BadTensor("Every input must have the same first (batch) dimension.")
    count = sizes.pop()
    if not 1 <= count <= max_items:
        raise BadTensor(f"The batch dimension must be 1 to {max_items} items; it is {count}.")
    items: list[tuple[dict[str, Any], dict[str, bytes]]] = [({}, {}) for _ in range(count)]
    for tensor in tensors:
        spec = known[tensor.name]
        step = len(tensor.data) // count
        for index, (fields, files) in enumerate(items):
            row = tensor.data[index * step : (index + 1) * step]
            if spec.kind == "image" and tensor.binary:
                files[spec.name] = row[0]
            else:
                fields[spec.name] = _value(spec, tensor, row)
    return items


def _value(spec: FieldSpec, tensor: Tensor, row: list[Any]) -> Any:
    """One item's value of an input, as `/v1` predict's JSON would hold it."""
    if spec.kind == "tensor":
        return _nest(row, tensor.shape[1:])
    value = row[0]
    if spec.kind in ("text", "image"):  # an image in JSON: base64 text or a data: URL
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise BadTensor(f"input {spec.name}: not UTF-8 text.") from None
    if spec.kind == "json":
        try:
            return json.loads(value)
        except ValueError:
            raise BadTensor(f"input {spec.name}: not JSON text.") from None
    return value


def output_tensors(
    declaration: Declaration, results: list[dict[str, Any]], wanted: list[str]
) -> list[Tensor]:
    """The items' outputs (as the model process encoded them) stacked along the batch."""
    specs = {spec.name: spec for spec in declaration.outputs}
    tensors = []
    for name in wanted:
        spec = specs[name]
        values = [result.get(name) for result in results]
        if all(value is None for value in values):
            continue  # an optional output no item gave
        if any(value is None for value in values):
            raise BadTensor(
                f"output {name}: some items have it and some not; send them one by one."
            )
        rows = [_row(spec, value) for value in values]
        shapes = {tuple(shape) for shape, _ in rows}
        if len(shapes) != 1:
            raise BadTensor(
                f"output {name}: its shape differs between items; send them one by one."
            )
        shape = list(shapes.pop())
        data = [element for _, row in rows for element in row]
        tensors.append(Tensor(name, datatype(spec), [len(values), *shape], data))
    return tensors


def _row(spec: FieldSpec, value: Any) -> tuple[list[int], list[Any]]:
    """One item's output as (shape after the batch dimension, flat elements)."""
    if spec.kind == "text":
        return [], [value.encode("utf-8")]
    if spec.kind == "json":
        return [], [json.dumps(value, separators=(",", ":")).encode("utf-8")]
    if spec.kind == "image":  # the model process sends a PNG data URL
        return [], [base64.b64decode(value.partition(",")[2])]
    if spec.kind in ("boolean", "number"):
        return [], [value]
    shape, flat = [], value
    while isinstance(flat, list):
        shape.append(len(flat))
        flat = flat[0] if flat else None
    elements = value
    for _ in range(len(shape) - 1):
        elements = [element for inner in elements for element in inner]
    if not shape:
        return [], [value]
    if len(elements) != math.prod(shape) or any(isinstance(e, list) for e in elements):
        raise APIError(f"The model's output {spec.name} is ragged.")
    return shape, elements

"""The protocol's wire format: an inference request's JSON and binary tensors in, the answer out.

A body is one JSON object, or (Triton's binary tensor data extension) that object
followed by each binary input's bytes in input order, with the header
`Inference-Header-Content-Length` giving the JSON's length and each binary input's
`parameters.binary_data_size` its share of the rest. Binary tensors are little-endian,
row-major; a BYTES element is a 4-byte little-endian length and its bytes; a BOOL is
one byte. Tensors come out flat (`Tensor.data`, Python values; BYTES as `bytes`), so
the callers never see the wire. Anything malformed is a 400 naming the tensor. Knows
nothing of models.
"""

from __future__ import annotations

import base64
import json
import math
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from api.edge.errors import BadRequest

HEADER_LENGTH = "Inference-Header-Content-Length"
# Datatypes of fixed size, as numpy reads them (little-endian); BF16, BOOL and BYTES by hand.
NUMPY_TYPES = {
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}
DATATYPES = (*NUMPY_TYPES, "BF16", "BOOL", "BYTES")
INTEGER_TYPES = tuple(name for name in NUMPY_TYPES if "INT" in name)
FLOAT_TYPES = ("FP16", "FP32", "FP64", "BF16")


class BadTensor(BadRequest):
    """A request the protocol cannot read (400): its message names the tensor at fault."""

    code = "bad_tensor"


@dataclass
class Tensor:
    """One tensor, flat: `data` holds prod(shape) Python values (BYTES elements as bytes)."""

    name: str
    datatype: str
    shape: list[int]
    data: list[Any]
    binary: bool = False  # it came (or goes) as binary data


@dataclass
class InferRequest:
    id: str | None
    inputs: list[Tensor]
    outputs: dict[str, bool | None] = field(default_factory=dict)  # requested: binary or not
    binary_output: bool = False  # `binary_data_output`: the default for every output


def read_request(body: bytes, header_length: str | None) -> InferRequest:
    """Parse an inference request; BadTensor (400) says what is wrong with it."""
    if header_length is not None and (
        not header_length.isdigit() or int(header_length) > len(body)
    ):
        raise BadTensor(f"{HEADER_LENGTH} must be the JSON's length, at most the body's.")
    split = len(body) if header_length is None else int(header_length)
    header, rest = body[:split], body[split:]
    try:
        parsed = json.loads(header)
    except (ValueError, RecursionError):
        raise BadTensor("The inference request is not valid JSON.") from None
    if not isinstance(parsed, dict):
        raise BadTensor("The inference request must be a JSON object.")
    request_id = parsed.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadTensor("id must be a string.")
    parameters = _parameters(parsed.get("parameters"), "the request")
    inputs = parsed.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise BadTensor("inputs must be a non-empty list of tensors.")
    tensors: list[Tensor] = []
    offset = 0
    for index, raw in enumerate(inputs):
        tensor, used = _read_input(raw, index, rest, offset)
        if any(known.name == tensor.name for known in tensors):
            raise BadTensor(f"input {tensor.name}: given twice.")
        tensors.append(tensor)
        offset += used
    if offset != len(rest):
        raise BadTensor(
            f"The binary data is {len(rest)} bytes; "
            f"the inputs' binary_data_size add up to {offset}."
        )
    return InferRequest(
        request_id,
        tensors,
        _requested_outputs(parsed.get("outputs")),
        _flag(parameters, "binary_data_output", "the request"),
    )


def _parameters(raw: Any, where: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise BadTensor(f"parameters of {where} must be an object.")
    return raw


def _flag(parameters: dict[str, Any], name: str, where: str) -> bool:
    value = parameters.get(name, False)
    if not isinstance(value, bool):
        raise BadTensor(f"{name} of {where} must be true or false.")
    return value


def _requested_outputs(raw: Any) -> dict[str, bool | None]:
    if raw is None:
        return {}
    if not isinstance(raw, list):
        raise BadTensor("outputs must be a list of {name, parameters}.")
    requested: dict[str, bool | None] = {}
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise BadTensor("Each requested output needs a name.")
        parameters = _parameters(item.get("parameters"), f"output {item['name']}")
        binary = parameters.get("binary_data")
        if binary is not None and not isinstance(binary, bool):
            raise BadTensor(f"binary_data of output {item['name']} must be true or false.")
        requested[item["name"]] = binary
    return requested


def _read_input(raw: Any, index: int, rest: bytes, offset: int) -> tuple[Tensor, int]:
    """One input tensor and how many bytes of the binary data it took."""
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"]:
        raise BadTensor(f"inputs[{index}] needs a name.")
    name, datatype, shape = raw["name"], raw.get("datatype"), raw.get("shape")
    if datatype not in DATATYPES:
        raise BadTensor(f"input {name}: datatype must be one of {', '.join(DATATYPES)}.")
    if not isinstance(shape, list) or any(
        isinstance(size, bool) or not isinstance(size, int) or not 0 <= size < 2**63
        for size in shape
    ):
        raise BadTensor(f"input {name}: shape must be a list of sizes (0 or more).")
    count = math.prod(shape)
    parameters = _parameters(raw.get("parameters"), f"input {name}")
    size = parameters.get("binary_data_size")
    if size is None:
        if "data" not in raw:
            raise BadTensor(f"input {name}: give its data, or binary_data_size and binary data.")
        return Tensor(name, datatype, shape, _from_json(name, datatype, raw["data"], count)), 0
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise BadTensor(f"input {name}: binary_data_size must be a whole number of bytes.")
    if offset + size > len(rest):
        raise BadTensor(f"input {name}: the body ends before its {size} bytes of binary data.")
    data = from_binary(name, datatype, rest[offset : offset + size], count)
    return Tensor(name, datatype, shape, data, binary=True), size


_END = object()


def _flatten(data: Any) -> list[Any]:
    """Nested JSON lists in row-major order (the protocol allows either form)."""
    flat: list[Any] = []
    stack = [iter([data])]
    while stack:
        item = next(stack[-1], _END)
        if item is _END:
            stack.pop()
        elif isinstance(item, list):
            stack.append(iter(item))
        else:
            flat.append(item)
    return flat


def _from_json(name: str, datatype: str, data: Any, count: int) -> list[Any]:
    flat = _flatten(data)
    if len(flat) != count:
        raise BadTensor(f"input {name}: {len(flat)} elements in data; its shape holds {count}.")
    if datatype == "BYTES":
        if not all(isinstance(item, str) for item in flat):
            raise BadTensor(f"input {name}: BYTES elements in JSON must be strings.")
        try:
            return [item.encode("utf-8") for item in flat]
        except UnicodeEncodeError:
            raise BadTensor(f"input {name}: a string is not valid Unicode.") from None
    if datatype == "BOOL":
        if not all(isinstance(item, bool) for item in flat):
            raise BadTensor(f"input {name}: BOOL elements must be true or false.")
        return flat
    whole = datatype in INTEGER_TYPES
    for item in flat:
        if isinstance(item, bool) or not isinstance(item, int if whole else int | float):
            kind = "whole numbers" if whole else "numbers"
            raise BadTensor(f"input {name}: {datatype} elements must be {kind}.")
    if not whole and not all(math.isfinite(item) for item in flat):
        raise BadTensor(f"input {name}: NaN and infinity are not numbers a model takes.")
    return flat if whole else [float(item) for item in flat]


def from_binary(name: str, datatype: str, raw: bytes, count: int) -> list[Any]:
    """Decode `count` elements of `datatype` from little-endian bytes."""
    if datatype == "BYTES":
        items, offset = [], 0
        while offset < len(raw):
            if offset + 4 > len(raw):
                raise BadTensor(f"input {name}: a BYTES element's length is cut short.")
            (length,) = struct.unpack_from("<I", raw, offset)
            offset += 4
            if offset + length > len(raw):
                raise BadTensor(f"input {name}: a BYTES element runs past its binary data.")
            items.append(raw[offset : offset + length])
            offset += length
        if len(items) != count:
            raise BadTensor(f"input {name}: {len(items)} BYTES elements; its shape holds {count}.")
        return items
    width = 1 if datatype == "BOOL" else 2 if datatype == "BF16" else int(NUMPY_TYPES[datatype][-1])
    if len(raw) != count * width:
        raise BadTensor(
            f"input {name}: {len(raw)} bytes of binary data; "
            f"{count} {datatype} take {count * width}."
        )
    if datatype == "BOOL":
        return [byte != 0 for byte in raw]
    if datatype == "BF16":  # the top half of a float32
        widened = np.frombuffer(raw, dtype="<u2").astype("<u4") << 16
        return widened.view("<f4").astype(float).tolist()  # type: ignore[no-any-return]
    values = np.frombuffer(raw, dtype=NUMPY_TYPES[datatype])
    if datatype in FLOAT_TYPES and not np.isfinite(values).all():
        raise BadTensor(f"input {name}: NaN and infinity are not numbers a model takes.")
    return values.tolist()  # type: ignore[no-any-return]


def to_binary(tensor: Tensor) -> bytes:
    """`tensor.data` as the extension's binary form."""
    if tensor.datatype == "BYTES":
        return b"".join(struct.pack("<I", len(item)) + item for item in tensor.data)
    if tensor.datatype == "BOOL":
        return bytes(1 if item else 0 for item in tensor.data)
    if tensor.datatype == "BF16":
        wide = np.asarray(tensor.data, dtype="<f4").view("<u4")
        return ((wide + 0x7FFF + ((wide >> 16) & 1)) >> 16).astype("<u2").tobytes()  # round
    return np.asarray(tensor.data, dtype=NUMPY_TYPES[tensor.datatype]).tobytes()


def _json_data(tensor: Tensor) -> list[Any]:
    """BYTES as text: UTF-8 when it is, else base64 (an image)."""
    if tensor.datatype != "BYTES":
        return tensor.data
    out = []
    for item in tensor.data:
        try:
            out.append(item.decode("utf-8"))
        except UnicodeDecodeError:
            out.append(base64.b64encode(item).decode("ascii"))
    return out


def write_response(
    model_name: str, version: str, request_id: str | None, outputs: list[Tensor]
) -> tuple[bytes, int | None]:
    """The answer's body and, when any output is binary, the JSON's length for the header."""
    described, blobs = [], []
    for tensor in outputs:
        entry: dict[str, Any] = {
            "name": tensor.name,
            "datatype": tensor.datatype,
            "shape": tensor.shape,
        }
        if tensor.binary:
            blob = to_binary(tensor)
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = _json_data(tensor)
        described.append(entry)
    answer: dict[str, Any] = {"model_name": model_name, "model_version": version}
    if request_id is not None:
        answer["id"] = request_id
    answer["outputs"] = described
    header = json.dumps(answer, separators=(",", ":")).encode()
    if not blobs:
        return header, None
    return header + b"".join(blobs), len(header)

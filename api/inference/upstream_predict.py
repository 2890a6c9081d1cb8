"""`POST /v1/models/{id}/predict` on an Open Inference Protocol upstream: one item.

The JSON body's named inputs become a one-item inference request (each value, a number,
a string or a nested list, is one item: shape `[1, *its shape]`, datatype from the
upstream's metadata, else FP32 for numbers and BYTES for strings), sent as JSON
tensors; the answer's outputs come back by name without the batch dimension. One
unit (`items`) per call. Services without the request: the route passes the body.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from api.edge.errors import APIError, Unprocessable
from api.runtime.upstreams.oip import OIPUpstream


def _tensor(name: str, value: Any, datatypes: dict[str, str]) -> dict[str, Any]:
    try:
        array = np.asarray(value)
    except ValueError:
        raise Unprocessable(f"{name}: give a number, a string or a regular nested list.") from None
    if array.dtype.kind not in "biufU":
        raise Unprocessable(f"{name}: give a number, a string or a regular nested list.")
    default = "BYTES" if array.dtype.kind == "U" else "FP32"
    datatype = datatypes.get(name, default)
    return {
        "name": name,
        "datatype": datatype,
        "shape": [1, *array.shape],
        "data": array.reshape(-1).tolist(),
    }


def _output(raw: dict[str, Any]) -> Any:
    """One output's item 0, nested by its shape without the batch dimension."""
    shape = [int(size) for size in raw.get("shape", [])][1:]
    data = raw.get("data", [])
    if not shape:
        return data[0] if len(data) == 1 else data
    return np.asarray(data).reshape(shape).tolist()


def predict(upstream: OIPUpstream, fields: dict[str, Any], *, deadline: float) -> dict[str, Any]:
    """Run one item on `upstream`: its outputs by name."""
    try:
        described = upstream.metadata(deadline=deadline).get("inputs") or []
        datatypes = {str(spec.get("name")): str(spec.get("datatype")) for spec in described}
    except APIError:
        datatypes = {}  # no metadata: the values' own types
    inputs = [_tensor(name, value, datatypes) for name, value in fields.items()]
    body = json.dumps({"inputs": inputs}).encode()
    answer = upstream.infer(body, None, None, deadline=deadline)
    outputs = json.loads(answer.body[: answer.header_length]).get("outputs") or []
    return {str(raw.get("name")): _output(raw) for raw in outputs}

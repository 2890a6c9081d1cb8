"""What the predict route calls: check the request against the model's declaration, run it.

Takes plain values, never the request: the route reads JSON or multipart into
`fields` and `files`. Returns the model's outputs and the units the call used.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from api.runtime.errors import DeadlineExceeded
from api.runtime.handlers.inputs import check_request
from api.runtime.handlers.registry import HandlerModels


@dataclass(frozen=True)
class Prediction:
    model: str
    outputs: dict[str, Any]
    units: int
    unit: str  # what a unit is ("images", "items")


def predict(
    models: HandlerModels,
    model_id: str,
    fields: dict[str, Any],
    files: dict[str, bytes],
    *,
    from_form: bool,
    deadline: float,
) -> Prediction:
    """Validate and run one item; 400/422 naming the field, 503, 504, 500 as the model says."""
    described = models.describe(model_id)
    checked = check_request(described.declaration, fields, files, from_form=from_form)
    timeout = min(deadline - time.monotonic(), described.timeout_s)
    if timeout <= 0:
        raise DeadlineExceeded()
    outputs, units = models.client(model_id).predict(checked.values, checked.blobs, timeout)
    return Prediction(model_id, outputs, units, described.declaration.units)

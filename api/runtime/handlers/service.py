"""What the predict route calls: check the request against the model's declaration, run it.

Takes plain values, never the request: the route reads JSON or multipart into a
`PredictBody` (its `fields` and `files`). Returns the model's outputs and the units the
call used, or for a streaming handler asked to stream, a `PredictionStream` of its
partial outputs.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from api.runtime.errors import DeadlineExceeded
from api.runtime.handlers.inputs import check_request
from api.runtime.handlers.registry import HandlerModels


@dataclass(frozen=True)
class PredictBody:
    """One item's inputs as read: JSON fields, or a multipart form's fields and files."""

    fields: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)
    from_form: bool = False  # form fields are strings, to be read as the declared kinds


@dataclass(frozen=True)
class Prediction:
    model: str
    outputs: dict[str, Any]
    units: int
    unit: str  # what a unit is ("images", "items")


class PredictionStream:
    """A streaming handler's partial outputs as they come; `units` so far (all, at the end)."""

    def __init__(self, model: str, unit: str, frames: Iterator[dict[str, Any]]) -> None:
        self.model, self.unit, self.units = model, unit, 0
        self._frames = frames

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for frame in self._frames:
            self.units = int(frame["units"])
            if "outputs" in frame:
                yield frame["outputs"]

    def close(self) -> None:
        """Stop the model's generator (the client went away) or let go of the connection."""
        self._frames.close()  # type: ignore[attr-defined]


def streams(models: HandlerModels, model_id: str) -> bool:
    """Whether the model's `predict` is a generator (503 while its process is not ready)."""
    return models.describe(model_id).declaration.streaming


def stream(
    models: HandlerModels, model_id: str, body: PredictBody, *, deadline: float
) -> PredictionStream:
    """Validate one item and start its stream; errors before the first output are raised."""
    described, checked, timeout = _prepare(models, model_id, body, deadline)
    frames = models.client(model_id).stream(checked.values, checked.blobs, timeout)
    return PredictionStream(model_id, described.declaration.units, frames)


def predict(
    models: HandlerModels, model_id: str, body: PredictBody, *, deadline: float
) -> Prediction:
    """Validate and run one item; 400/422 naming the field, 503, 504, 500 as the model says."""
    described, checked, timeout = _prepare(models, model_id, body, deadline)
    outputs, units = models.client(model_id).predict(checked.values, checked.blobs, timeout)
    return Prediction(model_id, outputs, units, described.declaration.units)


def _prepare(
    models: HandlerModels, model_id: str, body: PredictBody, deadline: float
) -> tuple[Any, Any, float]:
    """The model's description, the checked request and the time left for the call."""
    described = models.describe(model_id)
    checked = check_request(
        described.declaration, body.fields, body.files, from_form=body.from_form
    )
    timeout = min(deadline - time.monotonic(), described.timeout_s)
    if timeout <= 0:
        raise DeadlineExceeded()
    return described, checked, timeout

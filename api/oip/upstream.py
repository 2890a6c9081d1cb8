"""The protocol's model routes for an upstream model (`upstream:oip:` in `MODELS`).

Metadata comes from the upstream (cached), readiness is the upstream's, and inference
passes the client's body through as it came (JSON or binary tensors) after it has been
read here once: a malformed request is refused before it leaves, and the batch
dimension of the first input is the call's metered units. See docs/upstreams.md.
"""

from __future__ import annotations

import time
from typing import Any

from flask import current_app

from api.edge.errors import ServiceUnavailable
from api.oip.codec import InferRequest
from api.runtime.upstreams.oip import Answer, OIPUpstream, oip_upstreams


def find(name: str) -> OIPUpstream | None:
    return oip_upstreams().get(name)


def _deadline() -> float:
    return time.monotonic() + current_app.config["INFERENCE_TIMEOUT_S"]


def model_metadata(name: str) -> dict[str, Any]:
    return oip_upstreams()[name].metadata(deadline=_deadline())


def model_ready(name: str, version: str | None) -> dict[str, Any]:
    """`{name, ready: true}`, or 503 when no replica says the model is ready."""
    if not oip_upstreams()[name].ready(version, deadline=_deadline()):
        raise ServiceUnavailable(
            f"The upstream model {name!r} is not ready.", headers={"Retry-After": "5"}
        )
    return {"name": name, "ready": True}


def units(request: InferRequest) -> int:
    """The batch dimension: the first input's first dimension (1 for a scalar input)."""
    shape = request.inputs[0].shape if request.inputs else []
    return max(1, int(shape[0])) if shape else 1


def infer(
    name: str, body: bytes, header_length: str | None, version: str | None, *, deadline: float
) -> Answer:
    return oip_upstreams()[name].infer(body, header_length, version, deadline=deadline)

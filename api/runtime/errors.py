"""The errors inference raises, already shaped for the client (see `api.edge.errors`).

A full queue or a model that cannot load is a 503 with `Retry-After`, a missed
deadline a 504, an unknown model a 404 naming it. Routes can let them propagate:
the app's error handlers answer them. A streamed response must catch them itself
once its first byte has gone out.
"""

from __future__ import annotations

import random

from api.edge.errors import GatewayTimeout, NotFound, ServiceUnavailable

RETRY_AFTER_S = 1


class QueueFull(ServiceUnavailable):
    """The model's waiting queue is full: the request was refused at once, not queued."""

    code = "overloaded"
    message = "The model is busy; retry shortly."

    def __init__(self, message: str | None = None) -> None:
        # `retry-after-ms`, which OpenAI's client libraries read before Retry-After: a
        # moment within the second at random, so the callers one burst turned away do
        # not all come back at once and meet a full queue again.
        wait_ms = random.randint(RETRY_AFTER_S * 250, RETRY_AFTER_S * 1000)
        super().__init__(
            message,
            headers={"Retry-After": str(RETRY_AFTER_S), "retry-after-ms": str(wait_ms)},
        )


class DeadlineExceeded(GatewayTimeout):
    """The request's deadline passed before its result was ready."""

    message = "The model did not answer in time."


class ModelNotFound(NotFound):
    """No model of that id is configured, or it does not do the requested task."""

    code = "model_not_found"

    def __init__(self, model_id: str | None, task: str | None = None) -> None:
        if model_id is None:
            detail = f"No {task or 'inference'} model is configured."
        else:
            detail = f"The model {model_id!r} does not exist"
            detail += f" or does not do {task}." if task else "."
        super().__init__(detail, details={"model": [detail]})


class ModelUnavailable(ServiceUnavailable):
    """A configured model could not be loaded (its files are missing or unreadable)."""

    code = "model_unavailable"

    def __init__(self, model_id: str) -> None:
        super().__init__(
            f"The model {model_id!r} is not available right now.",
            headers={"Retry-After": str(RETRY_AFTER_S * 30)},
        )

"""The worker's view of the handler models: which there are, how to reach them, their schema.

A worker never imports a handler: it learns each model's declaration from the
model's own process (`info`), once it is ready, and keeps it. The socket of model
`id` is `HANDLER_SOCKET_DIR/id.sock` (a private directory the gunicorn master makes).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from flask import current_app

from api.edge.errors import APIError
from api.runtime.errors import ModelNotFound, ModelUnavailable
from api.runtime.handlers.client import HandlerClient, socket_path
from api.runtime.handlers.declarations import Declaration, field_spec
from api.runtime.handlers.specs import HandlerSettings, handler_entries


@dataclass(frozen=True)
class Described:
    """A ready handler model as the worker knows it."""

    declaration: Declaration
    device: str
    created: int
    timeout_s: float


def declaration_from(model_id: str, described: dict[str, Any]) -> Declaration:
    """Rebuild a Declaration from the process's `describe()` data."""
    return Declaration(
        model_id,
        tuple(field_spec(raw, is_input=True) for raw in described["inputs"]),
        tuple(
            field_spec({k: v for k, v in raw.items() if k != "default"}, is_input=False)
            for raw in described["outputs"]
        ),
        int(described["max_batch_size"]),
        float(described["max_wait_ms"]),
        str(described["units"]),
        "cpu",
        bool(described.get("streaming", False)),
    )


class HandlerModels:
    """The handler models of `MODELS`, each reached at its socket in `socket_dir`."""

    def __init__(self, models: str, socket_dir: str | None) -> None:
        self.entries: dict[str, HandlerSettings] = handler_entries(models)
        self.socket_dir = socket_dir
        self._clients: dict[str, HandlerClient] = {}
        self._described: dict[str, Described] = {}
        self._lock = threading.Lock()

    def __contains__(self, model_id: object) -> bool:
        return model_id in self.entries

    def client(self, model_id: str) -> HandlerClient:
        if model_id not in self.entries:
            raise ModelNotFound(model_id, "predict")
        if self.socket_dir is None:  # no process was started for it (MODEL_SERVER=off, tests)
            raise ModelUnavailable(model_id)
        with self._lock:
            if model_id not in self._clients:
                path = socket_path(self.socket_dir, model_id)
                self._clients[model_id] = HandlerClient(model_id, path)
            return self._clients[model_id]

    def describe(self, model_id: str) -> Described:
        """The model's declaration; 503 while its process starts, loads or has failed."""
        known = self._described.get(model_id)
        if known is not None:
            return known
        client = self.client(model_id)
        info = client.info()
        if info.get("state") != "ready":
            raise ModelUnavailable(model_id)
        known = Described(
            declaration_from(model_id, info["declaration"]),
            str(info["device"]),
            int(info["created"]),
            float(info["timeout_s"]),
        )
        self._described[model_id] = known
        return known

    def states(self) -> dict[str, str]:
        """`ready`, `loading`, `failed: why` or `down` for each model (for /readyz)."""
        states = {}
        for model_id in self.entries:
            try:
                info = self.client(model_id).info(timeout=1.0)
            except APIError:
                states[model_id] = "down"
                continue
            state = str(info.get("state"))
            states[model_id] = f"failed: {info.get('error')}" if state == "failed" else state
        return states


def handler_models() -> HandlerModels:
    """This app's handler models (made on first use from MODELS and HANDLER_SOCKET_DIR)."""
    extensions = current_app.extensions
    if "handler_models" not in extensions:
        config = current_app.config
        extensions["handler_models"] = HandlerModels(
            config["MODELS"], config.get("HANDLER_SOCKET_DIR")
        )
    return extensions["handler_models"]


def model_info(models: HandlerModels, model_id: str) -> dict[str, Any]:
    """What `GET /v1/models/{id}` answers of a handler model: OpenAI's shape and its schema."""
    described = models.describe(model_id)
    return {
        "id": model_id,
        "created": described.created,
        "task": "handler",
        "device": described.device,
        "schema": described.declaration.describe(),
    }


def ready_models(models: HandlerModels) -> dict[str, Described]:
    """The handler models whose process is ready now, by id, in `MODELS` order."""
    ready = {}
    for model_id in models.entries:
        try:
            ready[model_id] = models.describe(model_id)
        except APIError:
            continue
    return ready


def ready_infos(models: HandlerModels) -> list[dict[str, Any]]:
    """The handler models that answer now (`GET /v1/models` lists only those)."""
    infos = []
    for model_id in models.entries:
        try:
            infos.append(model_info(models, model_id))
        except APIError:
            continue
    return infos

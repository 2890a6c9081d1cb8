"""The models a worker process serves: configured per app, loaded once per process.

`models = ModelRegistry()` is a Flask extension. `init_app` only parses `MODELS` and
the inference settings into `app.extensions["inference"]`; nothing loads there.
`load_all(app)` loads every configured model (call it once per worker, at start),
and `get`/`serve` load a missing one on first use. Loaded models, their batchers
and gates live on the registry, keyed by spec and settings, so several apps in one
process (the test suite) share one copy of each model. Torch is imported only when
the first model loads.
"""

from __future__ import annotations

import builtins
import logging
import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import Flask, current_app

from api.runtime.batcher import MicroBatcher
from api.runtime.errors import ModelNotFound, ModelUnavailable
from api.runtime.gate import GenerationGate
from api.runtime.metrics import ModelMetrics
from api.runtime.settings import InferenceSettings
from api.runtime.specs import ELSEWHERE, ModelInfo, ModelSpec, Task, parse_model_specs

if TYPE_CHECKING:
    from tokenizers import Tokenizer

    from api.runtime.handlers.embedding import HandlerEmbeddingBatcher, HandlerEmbeddingModel
    from api.runtime.models.embedding import EmbeddingModel
    from api.runtime.models.generation import TextGenerator
    from api.runtime.remote import RemoteBatcher, RemoteEmbeddingModel
    from api.runtime.upstreams.chat import UpstreamModel
    from api.runtime.upstreams.embedding import UpstreamBatcher

log = logging.getLogger(__name__)

EXTENSION_KEY = "inference"
EmbeddedText = tuple[list[float], int]  # one text's unit vector and its token count


@dataclass(frozen=True)
class AppModels:
    """What one app serves: its model specs, in `MODELS` order, and its settings."""

    specs: tuple[ModelSpec, ...]
    settings: InferenceSettings


@dataclass(frozen=True)
class ServedModel:
    """A loaded model with what admits requests to it: a batcher (embedding) or a gate,
    and an embedding model's tokenizer (to read token-id input)."""

    model: (
        EmbeddingModel
        | RemoteEmbeddingModel
        | UpstreamModel
        | TextGenerator
        | HandlerEmbeddingModel
    )
    metrics: ModelMetrics
    batcher: (
        MicroBatcher[str, EmbeddedText]
        | RemoteBatcher
        | UpstreamBatcher
        | HandlerEmbeddingBatcher
        | None
    ) = None
    gate: GenerationGate | None = None
    tokenizer: Tokenizer | None = None


def load_model(spec: ModelSpec) -> EmbeddingModel | TextGenerator:
    """Load `spec`'s model from disk as the handler runtime loads any handler (imports torch).

    The built-in kinds are handlers (docs/models.md): their declarations are checked,
    `setup` gets the device the declaration asks for, and embedding batches go
    through `predict`.
    """
    from api.runtime.devices import configure_torch
    from api.runtime.handlers.declarations import declare

    configure_torch()
    kind: type[EmbeddingModel] | type[TextGenerator]
    if spec.task == "embedding":
        from api.runtime.models.embedding import EmbeddingModel as kind
    else:
        from api.runtime.models.generation import TextGenerator as kind
    declare(kind, spec.id)  # ConfigError, as for any handler
    return kind.load(spec.id, spec.path)  # on the device its declaration asks for


class ModelRegistry:
    """The inference extension: configured models per app, loaded models per process."""

    def __init__(self) -> None:
        self._models: dict[ModelSpec, EmbeddingModel | TextGenerator] = {}
        self._served: dict[tuple[ModelSpec, InferenceSettings], ServedModel] = {}
        self._lock = threading.Lock()

    def init_app(self, app: Flask) -> None:
        """Read `MODELS` and the settings (raises ConfigError); loads nothing."""
        app.extensions[EXTENSION_KEY] = AppModels(
            specs=tuple(parse_model_specs(app.config.get("MODELS", ""))),
            settings=InferenceSettings.from_config(app.config),
        )

    def load_all(self, app: Flask) -> builtins.list[str]:
        """Load every model `app` is configured with; return the ids that could not load.

        Safe to call again or from several threads. A model that cannot load is logged
        and skipped, so the others still serve; requests for it answer 503 until its
        files appear (each use retries the load).
        """
        configured = self._configured(app)
        missing = []
        for spec in configured.specs:
            if spec.task in ELSEWHERE:  # handler processes, OIP upstreams: not loaded here
                continue
            try:
                self._serve_spec(spec, configured.settings)
            except ModelUnavailable:
                missing.append(spec.id)
        return missing

    def settings(self) -> InferenceSettings:
        return self._configured(current_app).settings

    def get(
        self, model_id: str
    ) -> (
        EmbeddingModel
        | RemoteEmbeddingModel
        | UpstreamModel
        | TextGenerator
        | HandlerEmbeddingModel
    ):
        """The loaded model `model_id` of the current app; ModelNotFound when not configured."""
        return self.serve(model_id).model

    def serve(self, model_id: str | None, task: Task | None = None) -> ServedModel:
        """The model `model_id` (None: the first configured for `task`), loaded if need be."""
        configured = self._configured(current_app)
        for spec in configured.specs:
            if spec.task == "handler" and spec.id == model_id and task == "embedding":
                return self._serve_handler(spec)
            if spec.task in ELSEWHERE:
                continue
            if (model_id is None or spec.id == model_id) and (task is None or spec.task == task):
                return self._serve_spec(spec, configured.settings)
        raise ModelNotFound(model_id, task)

    def _serve_handler(self, spec: ModelSpec) -> ServedModel:
        """An embedding-shaped handler model, run in its own process (`handlers.embedding`)."""
        from api.runtime.handlers.embedding import embedding_handler
        from api.runtime.handlers.registry import handler_models

        found = embedding_handler(handler_models(), spec.id)
        if found is None:
            raise ModelNotFound(spec.id, "embedding")
        model, batcher = found
        return ServedModel(model, ModelMetrics(spec.id), batcher=batcher)

    def close(self) -> None:
        """Stop every batcher thread; models stay loaded and later use gets fresh batchers."""
        with self._lock:
            served = builtins.list(self._served.values())
            self._served.clear()
        for entry in served:
            if entry.batcher is not None:
                entry.batcher.close()

    def _configured(self, app: Flask) -> AppModels:
        configured = app.extensions.get(EXTENSION_KEY)
        if configured is None:
            raise RuntimeError("api.runtime.registry.models.init_app(app) was not called")
        return configured

    def _serve_spec(self, spec: ModelSpec, settings: InferenceSettings) -> ServedModel:
        key = (spec, settings)
        served = self._served.get(key)
        if served is not None:
            return served
        with self._lock:
            served = self._served.get(key)
            if served is None:
                served = self._build(spec, settings)
                self._served[key] = served
        return served

    def upstreams(self) -> builtins.list[UpstreamModel]:
        """The current app's upstream models (built here, never contacted)."""
        configured = self._configured(current_app)
        return [
            self._serve_spec(spec, configured.settings).model  # type: ignore[misc]
            for spec in configured.specs
            if spec.upstream and spec.task != "oip"
        ]

    def _build(self, spec: ModelSpec, settings: InferenceSettings) -> ServedModel:
        if spec.upstream:
            from api.runtime.upstreams.chat import upstream_model

            upstream, sender = upstream_model(spec.id, spec.upstream, settings.queue_size)
            return ServedModel(
                upstream, ModelMetrics(spec.id), batcher=sender, tokenizer=upstream.tokenizer
            )
        if spec.task == "embedding" and settings.model_server:
            return self._build_remote(spec, settings)
        model = self._models.get(spec)
        if model is None:
            if not os.path.isdir(spec.path):
                log.error("model files missing", extra={"inference.model": spec.id})
                raise ModelUnavailable(spec.id)
            try:
                model = load_model(spec)
            except Exception as error:  # half-written or corrupt files: any failure
                log.exception(
                    "model failed to load", exc_info=error, extra={"inference.model": spec.id}
                )
                raise ModelUnavailable(spec.id) from error
            self._models[spec] = model
            log.info("model loaded", extra={"inference.model": spec.id})
        metrics = ModelMetrics(spec.id)
        if spec.task == "embedding":
            from api.runtime.models.embedding import EmbeddingModel

            assert isinstance(model, EmbeddingModel)
            predict = model.predict

            def run_batch(texts: builtins.list[str]) -> builtins.list[EmbeddedText]:
                results = predict([{"text": text} for text in texts])
                return [(result["embedding"].tolist(), result["_units"]) for result in results]

            batcher = settings.batcher(spec.id, run_batch, metrics)
            return ServedModel(model, metrics, batcher=batcher, tokenizer=model.tokenizer)
        gate = GenerationGate(
            slots=settings.generation_slots,
            max_waiting=settings.generation_queue_size,
            observer=metrics,
        )
        return ServedModel(model, metrics, gate=gate)

    def _build_remote(self, spec: ModelSpec, settings: InferenceSettings) -> ServedModel:
        """An embedding model of the model server: the worker keeps only its tokenizer."""
        from tokenizers import Tokenizer

        from api.runtime.remote import ModelServerClient, RemoteBatcher, RemoteEmbeddingModel

        client = ModelServerClient(settings.model_server)
        model = RemoteEmbeddingModel(spec, client, settings.model_server_wait_s)
        batcher = RemoteBatcher(model, client, settings.queue_size)
        tokenizer = Tokenizer.from_file(os.path.join(spec.path, "tokenizer.json"))
        tokenizer.no_truncation()
        tokenizer.no_padding()
        return ServedModel(model, ModelMetrics(spec.id), batcher=batcher, tokenizer=tokenizer)

    def list(self) -> builtins.list[ModelInfo]:
        """The current app's models that are loaded (or load now), in `MODELS` order."""
        configured = self._configured(current_app)
        infos = []
        for spec in configured.specs:
            if spec.task in ELSEWHERE:
                continue
            try:
                infos.append(self._serve_spec(spec, configured.settings).model.info)
            except ModelUnavailable:
                continue
        return infos


models = ModelRegistry()

"""Queueing and deadline settings of the local models, read from app.config."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from api.config import ConfigError
from api.runtime.batcher import MicroBatcher
from api.runtime.metrics import ModelMetrics

T = TypeVar("T")


@dataclass(frozen=True)
class InferenceSettings:
    """Queueing and deadline settings, from app.config (env vars of the same names)."""

    batch_max_size: int = 32
    batch_max_wait_ms: int = 5
    queue_size: int = 256
    timeout_s: float = 30.0
    generation_slots: int = 4
    generation_queue_size: int = 2
    model_server: str = ""  # the model server's socket: embedding models run there
    model_server_wait_s: float = 120.0

    def batcher(
        self,
        name: str,
        run_batch: Callable[[builtins.list[str]], Sequence[T]],
        observer: ModelMetrics,
    ) -> MicroBatcher[str, T]:
        """A batcher for the model `name` with these queueing settings."""
        return MicroBatcher(
            run_batch,
            name=name,
            max_batch=self.batch_max_size,
            max_wait_ms=self.batch_max_wait_ms,
            max_queue=self.queue_size,
            observer=observer,
        )

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> InferenceSettings:
        settings = cls(
            batch_max_size=int(config.get("BATCH_MAX_SIZE", cls.batch_max_size)),
            batch_max_wait_ms=int(config.get("BATCH_MAX_WAIT_MS", cls.batch_max_wait_ms)),
            queue_size=int(config.get("INFERENCE_QUEUE_SIZE", cls.queue_size)),
            timeout_s=float(config.get("INFERENCE_TIMEOUT_S", cls.timeout_s)),
            generation_slots=int(config.get("GENERATION_SLOTS", cls.generation_slots)),
            generation_queue_size=int(
                config.get("GENERATION_QUEUE_SIZE", cls.generation_queue_size)
            ),
            model_server=str(config.get("MODEL_SERVER_SOCKET") or ""),
            model_server_wait_s=float(config.get("MODEL_SERVER_WAIT_S", cls.model_server_wait_s)),
        )
        for name, value in (
            ("BATCH_MAX_SIZE", settings.batch_max_size),
            ("INFERENCE_QUEUE_SIZE", settings.queue_size),
            ("INFERENCE_TIMEOUT_S", settings.timeout_s),
            ("GENERATION_SLOTS", settings.generation_slots),
        ):
            if value <= 0:
                raise ConfigError(f"{name} must be more than 0, got {value}")
        if settings.batch_max_wait_ms < 0:
            raise ConfigError("BATCH_MAX_WAIT_MS must be 0 or more")
        return settings

"""A handler model's `MODELS` entry: `id=handler:TARGET [key=value ...]`.

TARGET is `package.module:Class` or `/absolute/file.py:Class`. The optional
settings, separated by spaces, override the class's own: `device` (cpu, cuda,
cuda:N), `max_batch_size`, `max_wait_ms`, `units`, and four that only the operator
sets: `timeout_s` (the deadline of one call, default `INFERENCE_TIMEOUT_S`),
`max_queue` (items waiting at most; more is a 503), `concurrency` (a streaming
handler's items run at once, default 1) and `path` (an absolute directory
the handler finds as `self.path` before `setup`: where the built-in handlers, and any
handler written to be reused, read their weights). Parsing touches no file.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any

from api.config import ConfigError
from api.runtime.handlers import loader
from api.runtime.handlers.loader import split_target

_INTS = ("max_batch_size", "timeout_s", "max_queue", "concurrency")
_FLOATS = ("max_wait_ms",)
_WORDS = ("device", "units")
SETTINGS = (*_INTS, *_FLOATS, *_WORDS, "path")


@dataclass(frozen=True)
class HandlerSettings:
    """The target of a handler model and the settings its `MODELS` entry gives."""

    target: str
    overrides: dict[str, Any] = field(default_factory=dict)  # declaration settings
    timeout_s: int | None = None
    max_queue: int = 256
    path: str | None = None  # set on the instance as `path` before `setup`
    concurrency: int = 1  # a streaming handler's items at once (a batched one: its batch)


def parse_handler(model_id: str, text: str) -> HandlerSettings:
    """`TARGET [key=value ...]` (what follows `handler:`), or ConfigError naming the model."""
    if not text.split():
        raise ConfigError(f"model {model_id!r}: name the handler after handler:")
    target, *pairs = text.split()
    split_target(model_id, target)
    values: dict[str, Any] = {}
    for pair in pairs:
        key, equals, raw = pair.partition("=")
        if not equals or key not in SETTINGS:
            raise ConfigError(
                f"model {model_id!r}: {pair!r} is not a setting; use key=value with key one of "
                + ", ".join(SETTINGS)
            )
        if key == "path" and not os.path.isabs(raw):
            raise ConfigError(f"model {model_id!r}: path must be absolute, got {raw!r}")
        if key in _INTS or key in _FLOATS:
            try:
                number = int(raw) if key in _INTS else float(raw)
            except ValueError:
                raise ConfigError(
                    f"model {model_id!r}: {key} must be a number, got {raw!r}"
                ) from None
            if number < (0 if key in _FLOATS else 1):
                raise ConfigError(f"model {model_id!r}: {key} must be positive, got {raw!r}")
            values[key] = number
        else:
            values[key] = raw
    timeout = values.pop("timeout_s", None)
    max_queue = values.pop("max_queue", 256)
    path = values.pop("path", None)
    concurrency = values.pop("concurrency", 1)
    return HandlerSettings(
        target, values, timeout, max_queue, path and os.path.normpath(path), concurrency
    )


def handler_entries(models: str) -> dict[str, HandlerSettings]:
    """The handler models of a `MODELS` value, by id, in order (other entries skipped)."""
    found: dict[str, HandlerSettings] = {}
    for entry in (item.strip() for item in models.split(",")):
        model_id, equals, rest = (part.strip() for part in entry.partition("="))
        if equals and rest.startswith("handler:"):
            found[model_id] = parse_handler(model_id, rest.removeprefix("handler:").strip())
    return found


def check_models(models: str) -> int:
    """Import every handler of `models` and check its declarations (never `setup`): 0 or 1.

    The gunicorn master runs this in a child before it starts, so a bad declaration
    stops the start with the error naming the model and the field, and torch is never
    imported into the master that forks the workers.
    """
    try:
        for model_id, settings in handler_entries(models).items():
            declaration = loader.describe_target(model_id, settings.target, settings.overrides)
            check_concurrency(model_id, settings, declaration.streaming)
    except ConfigError as error:
        print(f"modelgate: {error}", file=sys.stderr)
        return 1
    return 0


def check_concurrency(model_id: str, settings: HandlerSettings, streaming: bool) -> None:
    """ConfigError when `concurrency` is set on a batched handler, whose batches run in turn."""
    if settings.concurrency > 1 and not streaming:
        raise ConfigError(
            f"model {model_id!r}: concurrency applies to a streaming handler; a batched one "
            "runs one batch at a time (raise max_batch_size instead)"
        )

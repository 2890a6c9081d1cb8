"""What the protocol's routes call: server and model metadata, readiness, inference.

Takes plain values, never the request. A handler model's metadata comes from its
declaration (`tensors`); an embedding model is `text` BYTES [-1] in, `embedding` FP32
[-1, dimensions] out, computed by `api.inference.service.embed_texts` as `/v1/embeddings`
is. An inference request of N items runs each through the handler's own predict path
(`api.runtime.handlers.service.predict`): one item in the calling thread, several at
once from a small pool, so the model's batcher gathers them into one `predict(batch)`.
A request the model refuses (the house's 422) is the protocol's 400.
"""

from __future__ import annotations

import contextvars
import threading
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from typing import Any

from flask import current_app

from api.config import PROJECT_ROOT
from api.edge.errors import APIError, NotFound, ServiceUnavailable
from api.health.service import check_dependencies
from api.inference.service import embed_texts
from api.oip import tensors, upstream
from api.oip.codec import BadTensor, InferRequest, Tensor
from api.runtime.errors import ModelNotFound
from api.runtime.handlers import service as handlers
from api.runtime.handlers.registry import handler_models
from api.runtime.registry import models
from api.runtime.specs import parse_model_specs

SERVER_NAME = "modelgate"
EXTENSIONS = ["binary_tensor_data"]
VERSION = "1"  # a model here has one version
MAX_ITEMS = 64  # items in one request's batch dimension
POOL_THREADS = 16  # per worker: items of multi-item requests in flight at once
EMBEDDING_INPUT, EMBEDDING_OUTPUT = "text", "embedding"
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


@dataclass(frozen=True)
class Target:
    """A model the protocol serves: its name, how it runs, the scope a token needs for it."""

    name: str
    kind: str  # "handler", "embedding" or "upstream"
    scope: str


@dataclass(frozen=True)
class Inference:
    outputs: list[Tensor]
    units: int = 0  # a handler model's units
    tokens: int = 0  # an embedding model's input tokens


@cache
def server_version() -> str:
    with open(PROJECT_ROOT / "pyproject.toml", "rb") as file:
        return str(tomllib.load(file)["project"]["version"])


def server_metadata() -> dict[str, Any]:
    return {"name": SERVER_NAME, "version": server_version(), "extensions": EXTENSIONS}


def find_model(name: str, version: str | None) -> Target:
    """The model `name` (404 when not served here, or at another version)."""
    if upstream.find(name) is not None:  # its versions are the upstream's to judge
        return Target(name, "upstream", "predict")
    if version is not None and version != VERSION:
        raise NotFound(f"The model {name!r} has no version {version!r}; it has {VERSION!r}.")
    if name in handler_models():
        return Target(name, "handler", "predict")
    try:
        models.serve(name, task="embedding")
    except ModelNotFound:
        raise NotFound(f"The model {name!r} is not served by this protocol here.") from None
    return Target(name, "embedding", "embed")


def model_metadata(target: Target) -> dict[str, Any]:
    """The protocol's `$metadata_model_response` (503 while a handler model is not ready)."""
    if target.kind == "upstream":
        return upstream.model_metadata(target.name)
    if target.kind == "handler":
        declaration = handler_models().describe(target.name).declaration
        inputs = [tensors.metadata(spec) for spec in declaration.inputs]
        outputs = [tensors.metadata(spec) for spec in declaration.outputs]
        platform = "pytorch_handler"
    else:
        served = models.serve(target.name, task="embedding").model
        width = served.dimensions  # type: ignore[union-attr]  # an embedding model
        inputs = [{"name": EMBEDDING_INPUT, "datatype": "BYTES", "shape": [-1]}]
        outputs = [{"name": EMBEDDING_OUTPUT, "datatype": "FP32", "shape": [-1, width]}]
        platform = "pytorch_transformers"
    return {
        "name": target.name,
        "versions": [VERSION],
        "platform": platform,
        "inputs": inputs,
        "outputs": outputs,
    }


def model_ready(target: Target, version: str | None = None) -> dict[str, Any]:
    """`{name, ready: true}`, or 503 while the model starts, loads or has failed."""
    if target.kind == "upstream":
        return upstream.model_ready(target.name, version)
    if target.kind == "handler":
        handler_models().describe(target.name)
    else:
        models.serve(target.name, task="embedding")
    return {"name": target.name, "ready": True}


def server_ready() -> dict[str, Any]:
    """Ready when the database, Redis and every model the protocol serves answer; else 503."""
    problem = any(state != "ok" for state in check_dependencies().values())
    handler_states = handler_models().states()
    problem = problem or any(state != "ready" for state in handler_states.values())
    for spec in parse_model_specs(current_app.config["MODELS"]):
        if spec.task == "embedding" and not problem:
            try:
                models.serve(spec.id, task="embedding")
            except APIError:
                problem = True
    if problem:
        raise ServiceUnavailable("The server is not ready.", headers={"Retry-After": "5"})
    return {"ready": True}


def infer(target: Target, request: InferRequest, *, deadline: float) -> Inference:
    """Run one inference request on `target`; 400 for tensors the model cannot take."""
    if target.kind == "embedding":
        return _embed(target, request, deadline)
    declaration = handler_models().describe(target.name).declaration
    wanted = _wanted([spec.name for spec in declaration.outputs], request)
    items = tensors.split_items(declaration, request.inputs, MAX_ITEMS)
    predictions = _run_items(target.name, items, deadline)
    outputs = tensors.output_tensors(declaration, [p.outputs for p in predictions], wanted)
    _mark_binary(outputs, request)
    return Inference(outputs, units=sum(p.units for p in predictions))


def _wanted(names: list[str], request: InferRequest) -> list[str]:
    unknown = [name for name in request.outputs if name not in names]
    if unknown:
        raise BadTensor(
            f"output {unknown[0]}: the model has no such output; it has {', '.join(names)}."
        )
    return [name for name in names if not request.outputs or name in request.outputs]


def _mark_binary(outputs: list[Tensor], request: InferRequest) -> None:
    for tensor in outputs:
        asked = request.outputs.get(tensor.name)
        tensor.binary = request.binary_output if asked is None else asked


def _as_bad_tensor(error: APIError, where: str) -> APIError:
    """The house's 422 (a value the model refuses) as the protocol's 400, saying where."""
    if error.status != 422:
        return error
    return BadTensor(f"{where}{error.message}", details=error.details)


def _run_items(
    model_id: str, items: list[tuple[dict[str, Any], dict[str, bytes]]], deadline: float
) -> list[handlers.Prediction]:
    registry = handler_models()

    def run(fields: dict[str, Any], files: dict[str, bytes]) -> handlers.Prediction:
        body = handlers.PredictBody(fields, files)
        return handlers.predict(registry, model_id, body, deadline=deadline)

    if len(items) == 1:
        try:
            return [run(*items[0])]
        except APIError as error:
            raise _as_bad_tensor(error, "input ") from None
    pool = _shared_pool()
    futures = [
        pool.submit(contextvars.copy_context().run, run, fields, files) for fields, files in items
    ]
    results = []
    for index, future in enumerate(futures):
        try:
            results.append(future.result())
        except APIError as error:
            for waiting in futures[index + 1 :]:
                waiting.cancel()  # those not started yet: the request has failed
            raise _as_bad_tensor(error, f"item {index}, input ") from None
    return results


def _shared_pool() -> ThreadPoolExecutor:
    """This worker's threads for the items of multi-item requests (made on first use)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(POOL_THREADS, thread_name_prefix="oip-item")
        return _pool


def _embed(target: Target, request: InferRequest, deadline: float) -> Inference:
    if [tensor.name for tensor in request.inputs] != [EMBEDDING_INPUT]:
        raise BadTensor(f"{target.name} takes one input, {EMBEDDING_INPUT} (BYTES, [-1]).")
    wanted = _wanted([EMBEDDING_OUTPUT], request)
    tensor = request.inputs[0]
    if tensor.datatype != "BYTES":
        raise BadTensor(f"input {EMBEDDING_INPUT}: datatype {tensor.datatype}; give BYTES.")
    if len(tensor.shape) not in (1, 2) or (len(tensor.shape) == 2 and tensor.shape[1] != 1):
        raise BadTensor(
            f"input {EMBEDDING_INPUT}: shape {tensor.shape}; give [-1] (one text each)."
        )
    if not 1 <= len(tensor.data) <= MAX_ITEMS:
        raise BadTensor(f"input {EMBEDDING_INPUT}: give 1 to {MAX_ITEMS} texts.")
    try:
        texts = [item.decode("utf-8") for item in tensor.data]
    except UnicodeDecodeError:
        raise BadTensor(f"input {EMBEDDING_INPUT}: every text must be UTF-8.") from None
    try:
        result = embed_texts(target.name, texts, deadline=deadline)
    except APIError as error:
        raise _as_bad_tensor(error, f"input {EMBEDDING_INPUT}: ") from None
    width = len(result.vectors[0])
    data = [value for vector in result.vectors for value in vector]
    outputs = [Tensor(EMBEDDING_OUTPUT, "FP32", [len(texts), width], data)] if wanted else []
    _mark_binary(outputs, request)
    return Inference(outputs, tokens=result.prompt_tokens)

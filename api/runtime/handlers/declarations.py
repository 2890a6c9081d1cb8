"""A handler's declared inputs and outputs, checked once when the model loads.

Declarations are plain dicts so that a handler file imports nothing from modelgate:
`{"name": "image", "kind": "image", "max_pixels": 16_000_000}`. `declare(cls, id)`
turns a handler class's attributes into a frozen `Declaration`; anything wrong is a
`ConfigError` naming the model and the field, so a bad handler stops the start
rather than failing its first request.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from typing import Any

from api.config import ConfigError

KINDS = ("text", "image", "number", "boolean", "json", "tensor")
IMAGE_FORMATS = ("png", "jpeg", "webp", "gif", "bmp", "tiff")
DTYPES = (
    "float16",
    "bfloat16",
    "float32",
    "float64",
    "int8",
    "uint8",
    "int16",
    "int32",
    "int64",
    "bool",
)
_DEVICE = re.compile(r"cpu|cuda(:[0-9]{1,2})?")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
# The keys each kind may carry besides name, kind, required, default and description.
_LIMITS: dict[str, tuple[str, ...]] = {
    "text": ("max_length",),
    "image": ("max_bytes", "max_pixels", "formats"),
    "number": ("minimum", "maximum", "integer"),
    "boolean": (),
    "json": ("max_bytes",),
    "tensor": ("dtype", "shape", "max_elements"),
}
_COMMON = ("name", "kind", "required", "default", "description")
DEFAULTS: dict[str, dict[str, Any]] = {
    "text": {"max_length": 100_000},
    "image": {
        "max_bytes": 10_000_000,
        "max_pixels": 16_000_000,
        "formats": ["png", "jpeg", "webp"],
    },
    "number": {"minimum": None, "maximum": None, "integer": False},
    "boolean": {},
    "json": {"max_bytes": 1_000_000},
    "tensor": {"dtype": "float32", "max_elements": 1_000_000},
}


@dataclass(frozen=True)
class FieldSpec:
    """One declared input or output: its name, kind, whether it is required, its limits."""

    name: str
    kind: str
    required: bool = True
    default: Any = None
    description: str = ""
    limits: dict[str, Any] = field(default_factory=dict)

    def limit(self, key: str) -> Any:
        return self.limits.get(key)


@dataclass(frozen=True)
class Declaration:
    """What a handler class says of itself, checked."""

    model_id: str
    inputs: tuple[FieldSpec, ...]
    outputs: tuple[FieldSpec, ...]
    max_batch_size: int
    max_wait_ms: float
    units: str
    device: str
    streaming: bool = False  # `predict` is a generator: one item per call, partial outputs

    def input(self, name: str) -> FieldSpec | None:
        return next((spec for spec in self.inputs if spec.name == name), None)

    def describe(self) -> dict[str, Any]:
        """The declaration as JSON-ready data (`GET /v1/models/{id}`, the model server's info)."""
        return {
            "inputs": [_describe(spec) for spec in self.inputs],
            "outputs": [_describe(spec) for spec in self.outputs],
            "max_batch_size": self.max_batch_size,
            "max_wait_ms": self.max_wait_ms,
            "units": self.units,
            "streaming": self.streaming,
        }


def _describe(spec: FieldSpec) -> dict[str, Any]:
    described: dict[str, Any] = {"name": spec.name, "kind": spec.kind, "required": spec.required}
    if not spec.required and spec.default is not None:
        described["default"] = spec.default
    if spec.description:
        described["description"] = spec.description
    described.update({key: value for key, value in spec.limits.items() if value is not None})
    return described


class _Problem(Exception):
    pass


def _positive_int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _Problem(f"{key} must be a whole number of 1 or more, got {value!r}")
    return value


def _number(value: Any, key: str) -> float | int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Problem(f"{key} must be a number, got {value!r}")
    return value


def _limits(kind: str, raw: dict[str, Any]) -> dict[str, Any]:
    limits = {**DEFAULTS[kind], **{key: raw[key] for key in _LIMITS[kind] if key in raw}}
    if kind in ("text",):
        _positive_int(limits["max_length"], "max_length")
    if kind in ("image", "json"):
        _positive_int(limits["max_bytes"], "max_bytes")
    if kind == "image":
        _positive_int(limits["max_pixels"], "max_pixels")
        formats = limits["formats"]
        if (
            not isinstance(formats, list | tuple)
            or not formats
            or any(str(name).lower() not in IMAGE_FORMATS for name in formats)
        ):
            raise _Problem(f"formats must be a non-empty list of {', '.join(IMAGE_FORMATS)}")
        limits["formats"] = sorted({str(name).lower() for name in formats})
    if kind == "number":
        low, high = _number(limits["minimum"], "minimum"), _number(limits["maximum"], "maximum")
        if low is not None and high is not None and low > high:
            raise _Problem(f"minimum {low} is above maximum {high}")
        if not isinstance(limits["integer"], bool):
            raise _Problem("integer must be true or false")
    if kind == "tensor":
        if limits["dtype"] not in DTYPES:
            raise _Problem(f"dtype must be one of {', '.join(DTYPES)}, got {limits['dtype']!r}")
        shape = raw.get("shape")
        if (
            not isinstance(shape, list | tuple)
            or not shape
            or any(
                isinstance(size, bool) or not isinstance(size, int) or (size < 1 and size != -1)
                for size in shape
            )
        ):
            raise _Problem("shape must be a non-empty list of sizes (1 or more, or -1 for any)")
        limits["shape"] = list(shape)
        _positive_int(limits["max_elements"], "max_elements")
    return limits


def field_spec(raw: Any, *, is_input: bool) -> FieldSpec:
    """One declaration dict, checked; `_Problem` says what is wrong with it."""
    if not isinstance(raw, dict):
        raise _Problem(f"each declaration must be a dict, got {type(raw).__name__}")
    name, kind = raw.get("name"), raw.get("kind")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise _Problem(f"name must be 1-64 of [A-Za-z0-9_] not starting with a digit, got {name!r}")
    if kind not in KINDS:
        raise _Problem(f"{name}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
    unknown = sorted(set(raw) - set(_COMMON) - set(_LIMITS[kind]))
    if unknown:
        raise _Problem(f"{name}: {kind} does not take {', '.join(unknown)}")
    required = raw.get("required", True)
    if not isinstance(required, bool):
        raise _Problem(f"{name}: required must be true or false")
    if not is_input and "default" in raw:
        raise _Problem(f"{name}: an output has no default")
    if required and "default" in raw:
        raise _Problem(f"{name}: a default needs required: False")
    if kind in ("image", "tensor") and "default" in raw:
        raise _Problem(f"{name}: an {kind} input cannot have a default")
    try:
        limits = _limits(kind, raw)
    except _Problem as problem:
        raise _Problem(f"{name}: {problem}") from None
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise _Problem(f"{name}: description must be a string")
    return FieldSpec(name, kind, required, raw.get("default"), description, limits)


def _fields(model_id: str, raw: Any, what: str) -> tuple[FieldSpec, ...]:
    if not isinstance(raw, list | tuple) or not raw:
        raise ConfigError(f"model {model_id!r}: {what} must be a non-empty list of dicts")
    specs: list[FieldSpec] = []
    for index, item in enumerate(raw):
        try:
            spec = field_spec(item, is_input=what == "inputs")
        except _Problem as problem:
            raise ConfigError(f"model {model_id!r}: {what}[{index}] {problem}") from None
        if any(known.name == spec.name for known in specs):
            raise ConfigError(f"model {model_id!r}: {what} names {spec.name!r} twice")
        specs.append(spec)
    return tuple(specs)


def declare(handler: Any, model_id: str, overrides: dict[str, Any] | None = None) -> Declaration:
    """Check a handler class's (or instance's) declarations; `overrides` come from MODELS."""
    settings = {
        "max_batch_size": getattr(handler, "max_batch_size", 1),
        "max_wait_ms": getattr(handler, "max_wait_ms", 10),
        "units": getattr(handler, "units", "items"),
        "device": getattr(handler, "device", "cpu"),
        **(overrides or {}),
    }
    inputs = _fields(model_id, getattr(handler, "inputs", None), "inputs")
    outputs = _fields(model_id, getattr(handler, "outputs", None), "outputs")
    try:
        batch = _positive_int(settings["max_batch_size"], "max_batch_size")
        wait = _number(settings["max_wait_ms"], "max_wait_ms")
        if wait is None or wait < 0:
            raise _Problem(f"max_wait_ms must be 0 or more, got {settings['max_wait_ms']!r}")
        units = settings["units"]
        if not isinstance(units, str) or not re.fullmatch(r"[a-z][a-z_]{0,31}", units):
            raise _Problem(f"units must be a lower-case word such as 'images', got {units!r}")
        if not isinstance(settings["device"], str) or not _DEVICE.fullmatch(settings["device"]):
            raise _Problem(f"device must be cpu, cuda or cuda:N, got {settings['device']!r}")
        streaming = inspect.isgeneratorfunction(getattr(handler, "predict", None))
        if streaming and batch != 1:
            raise _Problem(
                "a streaming predict (a generator) takes one item at a time: max_batch_size 1"
            )
    except _Problem as problem:
        raise ConfigError(f"model {model_id!r}: {problem}") from None
    return Declaration(
        model_id, inputs, outputs, batch, float(wait), units, settings["device"], streaming
    )

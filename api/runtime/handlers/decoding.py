"""In the model's process: decode checked inputs for `predict`, encode its outputs.

Images are decoded here, once, under the declared pixel limit: the header is read
and its pixel count checked again before any pixel is, so no request can make this
process allocate more than `max_pixels` of image. Pillow's process-wide
`MAX_IMAGE_PIXELS` is left as it is: lowered, it would also refuse the images a
handler makes itself (Pillow checks it when it renders text, for one). A file that ends early or is
corrupt is a 422 naming the field. Outputs are checked against the declaration: a
handler that returns the wrong thing is the handler's fault (`HandlerFault`, a 500).
"""

from __future__ import annotations

import base64
import io
import math
import numbers
from typing import Any

from api.edge.errors import Unprocessable
from api.runtime.handlers.declarations import Declaration, FieldSpec

UNITS_KEY = "_units"  # an output dict may say how many units its item used


class HandlerFault(Exception):
    """The handler broke its declaration (a missing output, a wrong type or shape)."""


def decode_image(spec: FieldSpec, data: bytes) -> Any:
    import warnings

    from PIL import Image

    limit = spec.limits["max_pixels"]
    problem = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if (image.format or "").lower() not in spec.limits["formats"]:
                problem = f"Not one of {', '.join(spec.limits['formats'])}."
            elif image.size[0] * image.size[1] > limit:
                problem = f"The image has more than {limit} pixels."
            else:
                image.load()  # every pixel: a truncated file fails here
                return image.convert("RGB") if image.mode != "RGB" else image
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        problem = f"The image has more than {limit} pixels."
    except (OSError, SyntaxError, ValueError, EOFError):
        problem = "The image could not be decoded: the file is truncated or corrupt."
    raise Unprocessable(f"{spec.name}: {problem}", details={spec.name: [problem]})


def decode_item(
    declaration: Declaration, values: dict[str, Any], blobs: dict[str, bytes]
) -> dict[str, Any]:
    """The inputs `predict` gets for one item: images as RGB PIL images, tensors as torch."""
    item: dict[str, Any] = {}
    for spec in declaration.inputs:
        if spec.kind == "image":
            item[spec.name] = decode_image(spec, blobs[spec.name]) if spec.name in blobs else None
        elif spec.kind == "tensor" and values.get(spec.name) is not None:
            import torch

            dtype = getattr(torch, spec.limits["dtype"])
            item[spec.name] = torch.tensor(values[spec.name], dtype=dtype)
        else:
            item[spec.name] = values.get(spec.name, spec.default)
    return item


def _plain(value: Any) -> Any:
    """A torch or numpy value as a Python one (`.tolist()`), anything else as is."""
    tolist = getattr(value, "tolist", None)
    if callable(tolist) and not isinstance(value, list | tuple | str | bytes):
        return tolist()
    return value


def _shape(value: Any) -> list[int]:
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        value = value[0] if value else None
    return shape


def _encode(spec: FieldSpec, value: Any) -> Any:
    kind = spec.kind
    if kind == "image":
        from PIL import Image

        if not isinstance(value, Image.Image):
            raise HandlerFault(f"output {spec.name} must be a PIL image")
        buffer = io.BytesIO()
        value.save(buffer, format="PNG")
        return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    value = _plain(value)
    if kind == "text" and isinstance(value, str):
        return value
    if kind == "boolean" and isinstance(value, bool):
        return value
    if kind == "number" and isinstance(value, numbers.Real) and not isinstance(value, bool):
        try:
            finite = math.isfinite(value)
        except OverflowError:  # an integer too large for a float
            finite = False
        if not finite:
            raise HandlerFault(f"output {spec.name} is not a finite number")
        if spec.limits["integer"] and not isinstance(value, int):
            if not float(value).is_integer():
                raise HandlerFault(f"output {spec.name} is not an integer")
            return int(float(value))
        return value
    if kind == "json":
        return value
    if kind == "tensor" and isinstance(value, list | int | float | bool):
        shape = _shape(value)
        declared = spec.limits["shape"]
        if len(shape) != len(declared) or any(
            want not in (-1, size) for size, want in zip(shape, declared, strict=False)
        ):
            raise HandlerFault(f"output {spec.name} has shape {shape}, declared {declared}")
        return value
    raise HandlerFault(f"output {spec.name} is {type(value).__name__}, declared {kind}")


def encode_outputs(declaration: Declaration, result: Any) -> tuple[dict[str, Any], int]:
    """One item's outputs as JSON-ready data, and the units it used (1 unless it says)."""
    if not isinstance(result, dict):
        raise HandlerFault(f"predict must return one dict per item, got {type(result).__name__}")
    units = result.get(UNITS_KEY, 1)
    if isinstance(units, bool) or not isinstance(units, int) or units < 0:
        raise HandlerFault(f"{UNITS_KEY} must be a whole number of 0 or more")
    outputs: dict[str, Any] = {}
    for spec in declaration.outputs:
        if spec.name not in result or result[spec.name] is None:
            if spec.required:
                raise HandlerFault(f"predict gave no {spec.name}")
            outputs[spec.name] = None
            continue
        outputs[spec.name] = _encode(spec, result[spec.name])
    return outputs, units


def encode_partial(declaration: Declaration, result: Any) -> tuple[dict[str, Any], int | None]:
    """One event of a streaming handler: the declared outputs it gives, and its units if said."""
    if not isinstance(result, dict):
        raise HandlerFault(f"a streaming predict must yield dicts, got {type(result).__name__}")
    units = result.get(UNITS_KEY)
    if units is not None and (isinstance(units, bool) or not isinstance(units, int) or units < 0):
        raise HandlerFault(f"{UNITS_KEY} must be a whole number of 0 or more")
    outputs = {
        spec.name: _encode(spec, result[spec.name])
        for spec in declaration.outputs
        if result.get(spec.name) is not None
    }
    return outputs, units

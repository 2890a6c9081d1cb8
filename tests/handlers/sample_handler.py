"""Handlers for the unit tests: plain classes that import nothing from modelgate."""

from __future__ import annotations

import time


class Tiny:
    name = "tiny"
    inputs = [
        {
            "name": "image",
            "kind": "image",
            "max_bytes": 1_000_000,
            "max_pixels": 4096,
            "formats": ["png", "jpeg", "webp"],
        },
        {
            "name": "threshold",
            "kind": "number",
            "minimum": 0,
            "maximum": 1,
            "required": False,
            "default": 0.5,
        },
    ]
    outputs = [
        {"name": "label", "kind": "text"},
        {"name": "scores", "kind": "tensor", "dtype": "float32", "shape": [-1]},
    ]
    max_batch_size = 4
    max_wait_ms = 20
    units = "images"

    def setup(self, device: str) -> None:
        self.device = device
        self.batches: list[int] = []

    def predict(self, batch: list[dict]) -> list[dict]:
        self.batches.append(len(batch))
        results = []
        for item in batch:
            red = item["image"].getpixel((0, 0))[0] / 255
            results.append(
                {"label": "red" if red > item["threshold"] else "dark", "scores": [red, 1 - red]}
            )
        return results


class Vectors:
    inputs = [
        {"name": "x", "kind": "tensor", "dtype": "float32", "shape": [2, -1]},
        {"name": "note", "kind": "text", "max_length": 5, "required": False, "default": ""},
        {"name": "flag", "kind": "boolean", "required": False, "default": False},
        {"name": "meta", "kind": "json", "required": False, "default": {}},
        {"name": "k", "kind": "number", "integer": True, "required": False, "default": 1},
    ]
    outputs = [{"name": "sum", "kind": "number"}]

    def setup(self, device: str) -> None:
        pass

    def predict(self, batch: list[dict]) -> list[dict]:
        return [
            {"sum": float(item["x"].sum()) * item["k"], "_units": item["x"].shape[1]}
            for item in batch
        ]


class Broken(Vectors):
    def predict(self, batch: list[dict]) -> list[dict]:
        raise ValueError(f"secret input {batch[0]['note']}")


class Liar(Vectors):
    def predict(self, batch: list[dict]) -> list[dict]:
        return [{"sum": "not a number"} for _ in batch]


class Sleepy(Vectors):
    def predict(self, batch: list[dict]) -> list[dict]:
        time.sleep(1.0)
        return [{"sum": 0.0} for _ in batch]


class Counter:
    """A streaming handler: `predict` is a generator that yields each word as it is made."""

    inputs = [
        {"name": "word", "kind": "text", "max_length": 20},
        {
            "name": "count",
            "kind": "number",
            "integer": True,
            "minimum": 1,
            "maximum": 20,
            "required": False,
            "default": 3,
        },
        {
            "name": "fail_at",
            "kind": "number",
            "integer": True,
            "minimum": 0,
            "maximum": 20,
            "required": False,
            "default": 0,
        },
        {
            "name": "pause",
            "kind": "number",
            "minimum": 0,
            "maximum": 1,
            "required": False,
            "default": 0,
        },
    ]
    outputs = [{"name": "text", "kind": "text"}, {"name": "done", "kind": "boolean"}]
    units = "words"

    def setup(self, device: str) -> None:
        self.closed = 0

    def predict(self, batch: list[dict]):
        (item,) = batch
        try:
            for index in range(1, item["count"] + 1):
                if index == item["fail_at"]:
                    raise RuntimeError("the counter broke")
                time.sleep(item["pause"])
                yield {
                    "text": " ".join([item["word"]] * index),
                    "done": index == item["count"],
                    "_units": index,
                }
        finally:
            self.closed += 1


class Fuzzable:
    """The bounded fuzz run's handler model: one input of most kinds, outputs always valid."""

    inputs = [
        {"name": "text", "kind": "text", "max_length": 50},
        {"name": "level", "kind": "number", "integer": True, "minimum": -5, "maximum": 5},
        {"name": "loud", "kind": "boolean", "required": False, "default": False},
        {
            "name": "scale",
            "kind": "number",
            "minimum": 0,
            "maximum": 10,
            "required": False,
            "default": 1.0,
        },
        {
            "name": "ids",
            "kind": "tensor",
            "dtype": "int8",
            "shape": [2, -1],
            "max_elements": 64,
            "required": False,
        },
        {
            "name": "image",
            "kind": "image",
            "max_bytes": 10_000,
            "max_pixels": 1024,
            "formats": ["png"],
            "required": False,
        },
    ]
    outputs = [
        {"name": "text", "kind": "text"},
        {"name": "score", "kind": "number"},
        {"name": "width", "kind": "number", "integer": True, "required": False},
    ]
    max_batch_size = 4
    max_wait_ms = 2

    def setup(self, device: str) -> None:
        pass

    def predict(self, batch: list[dict]) -> list[dict]:
        results = []
        for item in batch:
            ids = item["ids"]
            total = int(ids.sum()) if ids is not None else 0
            image = item["image"]
            results.append(
                {
                    "text": item["text"].upper() if item["loud"] else item["text"],
                    "score": item["level"] * item["scale"] + total,
                    "width": image.size[0] if image is not None else None,
                }
            )
        return results

"""What the two built-in handlers share: their model directory, `load`, the device they ask for."""

from __future__ import annotations

import time
from typing import Self

import torch


class BuiltinModel:
    """A built-in handler (docs/models.md): made with no arguments by the handler runtime,
    which sets `path` (the entry's `path=` setting) before `setup(device)`."""

    device = "cuda"  # the GPU when the process sees one, else the CPU

    def __init__(self, model_id: str = "", path: str = "") -> None:
        self.id = model_id
        self.path = path  # the model's directory: a handler entry's `path=` setting

    @classmethod
    def load(cls, model_id: str, path: str, device: str | None = None) -> Self:
        """The model at `path`, set up on `device` (else the one the class asks for)."""
        from api.runtime.handlers.loader import choose_device

        model = cls(model_id, path)
        model.setup(device or choose_device(cls.device))
        return model

    def setup(self, device: str) -> None:
        raise NotImplementedError

    def _place(self, device: str) -> str:
        """Start `setup`: note the time and device; the directory to load, or ValueError."""
        if not self.path:
            raise ValueError("name the model's directory with the setting path=/absolute/dir")
        self.created = int(time.time())
        self.device = torch.device(device)  # type: ignore[assignment]
        return self.path

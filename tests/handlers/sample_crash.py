"""Handlers that misbehave at the process level, for the model-process tests."""

from __future__ import annotations

import os
import time


class Crasher:
    inputs = [{"name": "how", "kind": "text"}]
    outputs = [{"name": "ok", "kind": "boolean"}]

    def setup(self, device: str) -> None:
        pass

    def predict(self, batch: list[dict]) -> list[dict]:
        if batch[0]["how"] == "crash":
            os._exit(7)
        if batch[0]["how"] == "hang":
            time.sleep(3600)
        return [{"ok": True} for _ in batch]


class FailsSetup(Crasher):
    def setup(self, device: str) -> None:
        raise FileNotFoundError("weights.pt is missing")

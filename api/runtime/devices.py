"""Torch settings shared by the built-in models: thread count, quiet loading, parameter count.

(The device is the handler runtime's choice: `api.runtime.handlers.loader.choose_device`.)

Called when a model loads, never at import: `torch.set_num_threads` is split
between gunicorn workers (`GUNICORN_WORKERS`, default 1) so that workers on one
host do not fight over the same cores.
"""

from __future__ import annotations

import os

import torch
import transformers

_configured = False


def configure_torch() -> None:
    """Share the host's cores between gunicorn workers and silence load progress bars (once)."""
    global _configured
    if _configured:
        return
    workers = max(1, int(os.environ.get("GUNICORN_WORKERS", "1") or 1))
    threads = int(os.environ.get("TORCH_THREADS", "0") or 0)  # 0: the cores split by worker
    torch.set_num_threads(threads or max(1, (os.cpu_count() or 1) // workers))
    transformers.utils.logging.disable_progress_bar()
    _configured = True


def count_parameters(model: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())

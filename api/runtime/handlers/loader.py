"""Find a handler class from its `MODELS` target and make the instance that serves it.

A target is `package.module:Class` (imported as usual) or `/absolute/file.py:Class`
(loaded from that file under a private module name, so two handler files may share
a file name). Loading imports the handler's module, which may import torch: it runs
in the model's own process, never in a gunicorn worker, except for the declaration
check at start (`describe_target`), which imports the module but never calls `setup`.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import re
import sys
from typing import Any

from api.config import ConfigError
from api.runtime.handlers.declarations import Declaration, declare

_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_CLASS = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def split_target(model_id: str, target: str) -> tuple[str, str]:
    """`(module or file, class name)` of a target, or ConfigError naming the model."""
    where, _, class_name = target.rpartition(":")
    if not where or not _CLASS.fullmatch(class_name):
        raise ConfigError(
            f"model {model_id!r}: the handler must be package.module:Class or "
            f"/absolute/file.py:Class, got {target!r}"
        )
    if where.endswith(".py"):
        if not os.path.isabs(where):
            raise ConfigError(f"model {model_id!r}: the handler file {where!r} must be absolute")
    elif not _DOTTED.fullmatch(where):
        raise ConfigError(f"model {model_id!r}: {where!r} is neither a module nor a .py file")
    return where, class_name


def load_class(model_id: str, target: str) -> type:
    """Import the handler's module and return its class; ConfigError says what failed."""
    where, class_name = split_target(model_id, target)
    try:
        if where.endswith(".py"):
            if not os.path.isfile(where):
                raise ConfigError(f"model {model_id!r}: the handler file {where} does not exist")
            digest = hashlib.sha256(where.encode()).hexdigest()[:12]
            name = f"modelgate_handler_{digest}"
            module = sys.modules.get(name)
            if module is None:
                spec = importlib.util.spec_from_file_location(name, where)
                assert spec is not None and spec.loader is not None
                module = importlib.util.module_from_spec(spec)
                sys.modules[name] = module
                try:
                    spec.loader.exec_module(module)
                except BaseException:
                    del sys.modules[name]
                    raise
        else:
            module = importlib.import_module(where)
    except ConfigError:
        raise
    except Exception as error:
        raise ConfigError(
            f"model {model_id!r}: importing {where} failed: {type(error).__name__}: {error}"
        ) from error
    handler_class = getattr(module, class_name, None)
    if not isinstance(handler_class, type):
        raise ConfigError(f"model {model_id!r}: {where} has no class {class_name}")
    for method in ("setup", "predict"):
        if not callable(getattr(handler_class, method, None)):
            raise ConfigError(f"model {model_id!r}: {class_name} has no {method}() method")
    return handler_class


def describe_target(
    model_id: str, target: str, overrides: dict[str, Any] | None = None
) -> Declaration:
    """The checked declaration of the handler at `target` (its class, not an instance)."""
    return declare(load_class(model_id, target), model_id, overrides)


def choose_device(wanted: str) -> str:
    """`cuda:N` when the model asks for CUDA and this process sees a GPU, else `cpu`."""
    if wanted == "cpu":
        return "cpu"
    import torch

    if not torch.cuda.is_available():
        return "cpu"
    index = int(wanted.partition(":")[2] or 0)
    return f"cuda:{index}" if index < torch.cuda.device_count() else "cuda:0"

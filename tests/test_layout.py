"""The house stays as docs/decisions.md maps it (issue 25): no import circle inside `api/`,
imports point down the layers, and no module over 300 lines.

The import graph is read from the AST of every `api/**/*.py`, imports inside functions
included (a lazy import hides a circle, it does not remove it). An import names the
module it loads: `from api.edge import errors` is `api.edge.errors`, `from api.edge.errors
import APIError` is `api.edge.errors`. A package's `__init__` that Python runs on the way
is not counted: the app factory `api/__init__.py` imports every feature and would close
every loop.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
API = ROOT / "api"
MAX_LINES = 300

# The layers, from the ground up; a module may import its own layer or one below.
# The composition (`api/__init__.py`, `api.cli`, `api.models`) wires them all and is
# imported by nothing in api/ (the model server process starts the app: `api` is allowed there).
LAYERS = [
    ("wiring", ["api.config", "api.db_types", "api.extensions", "api.observability"]),
    ("edge", ["api.edge"]),
    ("process", ["api.process"]),
    ("runtime", ["api.runtime"]),
    ("access", ["api.access", "api.audit", "api.tokens", "api.auth.models"]),
    # Features may use each other (batches run inference, admin reads usage); no circles.
    (
        "features",
        [
            *("api.health", "api.auth", "api.admin", "api.usage", "api.files", "api.web"),
            *("api.inference", "api.responses", "api.batches", "api.oip"),
        ],
    ),
    ("composition", ["api.cli", "api.models", "api"]),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def api_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(API.rglob("*.py"))}


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The modules of `known` that `path` imports, anywhere in the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
            names = [name if name in known else node.module for name in names]
        else:
            continue
        found.update(name for name in names if name in known)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = api_modules()
    known = set(modules)
    return {name: imports_of(path, known) - {name} for name, path in modules.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def layer_of(module: str) -> int:
    best, rank = -1, -1
    for position, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            nested = prefix != "api" and module.startswith(prefix + ".")  # `api`: the factory only
            if (module == prefix or nested) and len(prefix) > best:
                best, rank = len(prefix), position
    return rank


def test_the_graph_sees_imports_inside_functions():
    graph = import_graph()
    assert "api.runtime.models.embedding" in graph["api.runtime.registry"]  # a lazy import


def test_a_circle_is_found():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_circle_inside_api():
    assert circles(import_graph()) == []


def test_imports_point_down_the_layers():
    upward = [
        f"{source} ({LAYERS[layer_of(source)][0]}) -> {target} ({LAYERS[layer_of(target)][0]})"
        for source, targets in import_graph().items()
        for target in sorted(targets)
        if layer_of(target) > layer_of(source)
        and not (source == "api.runtime.model_server" and target == "api")  # its own process
    ]
    assert upward == []


@pytest.mark.parametrize("module", sorted(api_modules()))
def test_every_module_has_a_layer(module):
    assert layer_of(module) >= 0, f"{module}: add it to LAYERS and to the map in docs"


def test_no_module_over_300_lines():
    long = {
        str(path.relative_to(ROOT)): lines
        for path in API.rglob("*.py")
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}

"""Rewrite imports and paths after issue 25's moves (docs/moves-issue-25.txt).

    python scripts/rewrite_moves.py [--git-mv] [FILE ...]   (default: every tracked file)

Rewrites, in .py/.md/.toml/.txt/.cfg/.ini/.conf/.sh/.yml files: dotted paths
(`api.errors` -> `api.edge.errors`), file paths (`api/errors.py` -> `api/edge/errors.py`),
and single-line `from PKG import a, b as c` where `PKG.a` is a moved module (split into
one line per new package; run `ruff check --fix` after, for the import order).
With --git-mv it first moves the files with `git mv` (the branch that makes the moves).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MOVES_FILE = ROOT / "docs" / "moves-issue-25.txt"
SUFFIXES = {".py", ".md", ".toml", ".txt", ".cfg", ".ini", ".conf", ".sh", ".yml", ".yaml"}
FROM_IMPORT = re.compile(r"^(\s*)from (api(?:\.\w+)*) import ([\w ,]+?)(\s*#.*)?$")


def read_moves() -> dict[str, str]:
    moves = {}
    for line in MOVES_FILE.read_text().splitlines():
        if "->" in line and not line.startswith("#"):
            old, new = (part.strip() for part in line.split("->"))
            moves[old] = new
    return moves


def as_path(dotted: str) -> str:
    return dotted.replace(".", "/") + ".py"


def rewrite_from_line(line: str, moves: dict[str, str]) -> str:
    match = FROM_IMPORT.match(line)
    if not match:
        return line
    indent, package, names, comment = match.groups()
    groups: dict[str, list[str]] = {}
    changed = False
    for item in (part.strip() for part in names.split(",") if part.strip()):
        name = item.split(" as ")[0].strip()
        new = moves.get(f"{package}.{name}")
        if new is None:
            groups.setdefault(package, []).append(item)
            continue
        changed = True
        new_package, new_name = new.rsplit(".", 1)
        alias = item.split(" as ")[1].strip() if " as " in item else name
        groups.setdefault(new_package, []).append(
            new_name if alias == new_name else f"{new_name} as {alias}"
        )
    if not changed:
        return line
    lines = [f"{indent}from {pkg} import {', '.join(items)}" for pkg, items in groups.items()]
    if comment:
        lines[0] += comment
    return "\n".join(lines)


def rewrite(text: str, moves: dict[str, str]) -> str:
    """Rewrite until nothing changes (a module moved, then a name moved out of it)."""
    for _ in range(4):
        new = rewrite_once(text, moves)
        if new == text:
            break
        text = new
    return text


def rewrite_once(text: str, moves: dict[str, str]) -> str:
    text = "\n".join(rewrite_from_line(line, moves) for line in text.split("\n"))
    for old in sorted(moves, key=len, reverse=True):
        new = moves[old]
        text = re.sub(rf"(?<![\w.]){re.escape(old)}(?![\w])", new, text)
        text = re.sub(rf"(?<![\w./]){re.escape(as_path(old))}", as_path(new), text)
    return text


def main(argv: list[str]) -> int:
    moves = read_moves()
    if "--git-mv" in argv:
        argv = [arg for arg in argv if arg != "--git-mv"]
        for old, new in moves.items():
            source, target = ROOT / as_path(old), ROOT / as_path(new)
            if source.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                subprocess.run(["git", "mv", str(source), str(target)], cwd=ROOT, check=True)
    files = (
        argv
        or subprocess.run(
            ["git", "ls-files"], cwd=ROOT, check=True, capture_output=True, text=True
        ).stdout.split()
    )
    for name in files:
        path = ROOT / name
        if path.suffix not in SUFFIXES or not path.is_file() or path == MOVES_FILE:
            continue
        if name.startswith(("web/", "elk/")) or path == Path(__file__).resolve():
            continue
        text = path.read_text()
        new = rewrite(text, moves)
        if new != text:
            path.write_text(new)
            print("rewrote", name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

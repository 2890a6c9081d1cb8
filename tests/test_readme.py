"""Every command block of the README runs, in order, against a live server (issue 24).

Blocks fenced ```bash, ```sh or ```python run; one just below
`<!-- readme-test: skip (why) -->` does not, and such skips stay few. A ```text
block right below a command block is the output it shows: each of its lines must
be in what the command printed, a JSON line by shape (the same keys, numbers of the
same type, "..." for any value, a trailing "..." in a list for more items), any
other line as text where "..." stands for anything. The blocks get what a reader
has: the live server's address for http://127.0.0.1:8000, the token of the
verification link the server printed for PASTE-THE-TOKEN, this virtualenv for
`.venv/bin/`, and one shell whose exported variables pass from block to block (the
Python blocks see them too). They run in a scratch folder, as `make run` runs: the
embedding model, the storyteller and the OCR example (the Makefile's MODELS), SQLite, no
Redis, mail to the log, a batch worker.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.services import ROOT, celery_worker, free_port, gunicorn

README = ROOT / "README.md"
RUNNABLE = {"bash", "sh", "python"}
FENCE = re.compile(
    r"(?:<!-- readme-test: skip \((?P<why>[^)\n]+)\) -->\n)?"
    r"^```(?P<lang>[\w-]*)\n(?P<body>.*?)^```\n",
    re.DOTALL | re.MULTILINE,
)
LINK_LINE = re.compile(r"^Verification link for me@example\.org: \S+\?token=(\S+)$", re.MULTILINE)


@dataclass
class Block:
    lang: str
    body: str
    line: int
    skip: str | None = None
    output: str | None = None


def readme_blocks() -> list[Block]:
    """The README's runnable blocks in order, each with the output block shown below it."""
    text = README.read_text()
    blocks: list[Block] = []
    previous_end = -1
    for match in FENCE.finditer(text):
        lang, body = match["lang"], match["body"]
        follows = match.start() == previous_end and blocks
        previous_end = match.end()
        if lang == "text" and follows:
            blocks[-1].output = body
        elif lang in RUNNABLE:
            line = text.count("\n", 0, match.start()) + 1
            blocks.append(Block(lang, body, line, skip=match["why"]))
    return blocks


def _same_shape(expected: Any, actual: Any) -> bool:
    if isinstance(expected, str) and "..." in expected:
        return isinstance(actual, str) and _text_pattern(expected).fullmatch(actual) is not None
    if isinstance(expected, dict):
        return (
            isinstance(actual, dict)
            and expected.keys() == actual.keys()
            and all(_same_shape(value, actual[key]) for key, value in expected.items())
        )
    if isinstance(expected, list):
        more = bool(expected) and expected[-1] == "..."
        items = expected[:-1] if more else expected
        if not isinstance(actual, list) or len(actual) < len(items):
            return False
        if not more and len(actual) != len(items):
            return False
        return all(_same_shape(e, a) for e, a in zip(items, actual, strict=False))
    if isinstance(expected, bool) or expected is None or isinstance(expected, str):
        return expected == actual
    return isinstance(actual, int | float) and not isinstance(actual, bool)


def _text_pattern(line: str) -> re.Pattern[str]:
    parts = [r"\s*".join(map(re.escape, piece.split())) for piece in line.split("...")]
    return re.compile(".*?".join(parts), re.DOTALL)


def check_output(expected: str, printed: str) -> None:
    """Each line of `expected` is in `printed`: JSON lines by shape, others as text."""
    printed_json = []
    for candidate in [printed, *printed.splitlines()]:
        try:
            printed_json.append(json.loads(candidate))
        except ValueError:
            continue
    for line in expected.splitlines():
        try:
            shape = json.loads(line)
        except ValueError:
            assert _text_pattern(line).search(printed), f"{line!r} not in:\n{printed}"
            continue
        assert any(_same_shape(shape, value) for value in printed_json), (
            f"no JSON shaped like {line} in:\n{printed}"
        )


def test_the_readme_marks_few_blocks_to_skip_and_says_why():
    blocks = readme_blocks()
    skipped = [block for block in blocks if block.skip]
    assert len(blocks) >= 10
    assert 1 <= len(skipped) <= 3, [block.line for block in skipped]
    assert all(len(block.skip or "") > 10 for block in skipped)


def test_check_output_compares_shapes():
    check_output('{"a": "...", "n": 1, "v": [0.5, "..."]}', '{"a":"x","n":7,"v":[1.0,2.0]}')
    check_output("HTTP/1.1 404 NOT FOUND ... X-Id: 1", "HTTP/1.1 404 NOT FOUND\r\nX-Id: 1\r\n")
    for expected, printed in (
        ('{"a": 1}', '{"a": 1, "b": 2}'),  # a key more
        ('{"a": "x"}', '{"a": "y"}'),  # another value
        ('{"n": 1}', '{"n": "1"}'),  # another type
        ("completed 2", "failed 2"),
    ):
        try:
            check_output(expected, printed)
        except AssertionError:
            continue
        raise AssertionError(f"{expected!r} should not match {printed!r}")


def _verification_token(stderr: Path, timeout: float = 15.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = LINK_LINE.findall(stderr.read_text(errors="replace"))
        if found:
            return found[-1]
        time.sleep(0.2)
    raise AssertionError("the server printed no verification link for me@example.org")


def make_run_models() -> str:
    """What `make run` serves: the value of the Makefile's `MODELS ?= ...` line."""
    found = re.search(r"^MODELS \?= (\S+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert found, "the Makefile has no `MODELS ?= ...` line for make run"
    return found[1]


def _read_env(path: Path) -> dict[str, str]:
    pairs = (item.split("=", 1) for item in path.read_bytes().decode().split("\0") if "=" in item)
    return {name: value for name, value in pairs}


def test_every_readme_command_runs_against_a_live_server(sqlite_template, tmp_path):
    database = tmp_path / "modelgate.db"
    shutil.copy(sqlite_template, database)
    port = free_port()
    env = {
        "DATABASE_URL": f"sqlite:///{database}",
        "MODELS": make_run_models(),
        "FRONTEND_URL": "",  # the development default: what gunicorn serves
        "MAIL_SERVER": "",
        "REDIS_URL": "",
        "FILES_DIR": str(tmp_path / "files"),
        "CELERY_BROKER_DIR": str(tmp_path / "celery"),
        "WEB_DIST": str(ROOT / "web" / "dist"),
    }
    reader = tmp_path / "reader"
    reader.mkdir()
    state = tmp_path / "shell.env"
    shell_env = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
    with gunicorn(env, tmp_path, workers=1, port=port) as base, celery_worker(env, tmp_path):
        stderr = tmp_path / "gunicorn.stderr"
        assert f"modelgate is ready at {base} (/readyz: 200)" in stderr.read_text()
        for block in readme_blocks():
            if block.skip:
                continue
            code = block.body.replace("http://127.0.0.1:8000", base)
            code = code.replace(".venv/bin/", f"{Path(sys.executable).parent}/")
            if "PASTE-THE-TOKEN" in code:
                code = code.replace("PASTE-THE-TOKEN", _verification_token(stderr))
            if block.lang == "python":
                command = [sys.executable, "-c", code]
            else:
                command = ["bash", "-c", f"set -eo pipefail\n{code}\nenv -0 > {state}"]
            result = subprocess.run(
                command,
                cwd=reader,
                env=shell_env,
                capture_output=True,
                text=True,
                timeout=240,
                check=False,
            )
            where = f"README.md line {block.line} ({block.lang})"
            assert result.returncode == 0, f"{where} failed:\n{result.stdout}\n{result.stderr}"
            if block.lang != "python":
                shell_env = _read_env(state)
            if block.output is not None:
                try:
                    check_output(block.output, result.stdout)
                except AssertionError as error:
                    raise AssertionError(f"{where}: {error}") from None

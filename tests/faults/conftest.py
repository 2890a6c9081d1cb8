"""What the fault scenarios share: Redis of their own,
and the checks that nothing answered was lost (its usage row, its access line)."""

from __future__ import annotations

import collections
import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tests.services import free_port
from tests.usage.test_live import _wait_for_rows


def wait_for(condition: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {what}")


def access_traces(*files: Path, cut_lines: bool = False) -> collections.Counter[str]:
    """How many access lines each trace id has, across `files` (a rotated log and its successor).

    `cut_lines`: skip lines a full disk cut short (each ended on its own line), else fail.
    """
    seen: collections.Counter[str] = collections.Counter()
    for path in files:
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            if cut_lines and not line.endswith("}"):
                continue
            record = json.loads(line)
            if record.get("log.logger") == "modelgate.access":
                seen[record["trace.id"]] += 1
    return seen


def assert_nothing_lost(database: str, answered: list[str], *logs: Path) -> None:
    """Every answered metered call has exactly one usage row and one access line."""
    assert answered, "no call was answered"
    rows = _wait_for_rows(database, answered)
    assert sorted(rows) == sorted(answered)
    logged = access_traces(*logs)
    missing = [trace for trace in answered if logged[trace] != 1]
    assert missing == [], f"{len(missing)} answered calls without exactly one access line"


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[str, Callable[[], None], Callable[[], None]]]:
    """A Redis server of this test's own on a free port, which it may stop and start again."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = free_port()
    processes: list[subprocess.Popen] = []

    def start() -> None:
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(tmp_path)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        processes.append(process)
        wait_for(lambda: _answers(port), 10, "redis-server to answer")

    def stop() -> None:
        process = processes[-1]
        process.terminate()
        process.wait(timeout=10)

    start()
    yield f"redis://127.0.0.1:{port}/0", start, stop
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


def _answers(port: int) -> bool:
    try:
        return bool(redis.Redis(port=port, socket_timeout=0.5).ping())
    except redis.RedisError:
        return False

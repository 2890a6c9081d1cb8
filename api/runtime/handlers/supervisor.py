"""Start a handler model's process and start it again when it dies (one per handler model).

The gunicorn master calls `start(model_id, path)`; the supervisor child it starts
runs the model's server as its own child, restarting it with a growing pause (0.5 s
doubling to 10 s, back to 0.5 s after 30 s alive). Both end with their parent.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import subprocess
import sys
import time

PR_SET_PDEATHSIG = 1


def end_with_parent() -> None:
    """Ask Linux for SIGTERM when the parent dies, so no model outlives its gunicorn."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def stop_on_sigterm() -> None:
    def stop(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)


def supervise(command: list[str]) -> int:
    """Run `command` and run it again whenever it exits, until SIGTERM or SIGINT."""
    end_with_parent()
    stopping = False
    child: subprocess.Popen[bytes] | None = None

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        if child is not None:
            child.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    pause = 0.5
    while not stopping:
        started = time.monotonic()
        child = subprocess.Popen(command)  # noqa: S603 - our own module
        code = child.wait()
        if stopping:
            break
        print(f"modelgate: {command[-3]} exited with {code}; starting it again", file=sys.stderr)
        pause = 0.5 if time.monotonic() - started > 30 else min(pause * 2, 10.0)
        time.sleep(pause)
    return 0


def start(model_id: str, path: str) -> subprocess.Popen[bytes]:
    """Start the supervisor of `model_id`'s process, listening on `path`."""
    command = [sys.executable, "-m", "api.runtime.handlers.server", "--supervise"]
    return subprocess.Popen([*command, "--model", model_id, "--socket", path])  # noqa: S603

"""The model server's keeper: start it from the gunicorn master, restart it when it dies.

`start_supervisor` (called by gunicorn.conf.py) runs `python -m api.runtime.model_server
--supervise`, whose `supervise` runs the server as a child and starts it again whenever
it exits, until SIGTERM; both end with their parent (`end_with_parent`). Each handler
model's process is kept by the same loop (`restart_forever`, `api.runtime.handlers.supervisor`).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time

from api.runtime import wire

MODULE = "api.runtime.model_server"
PR_SET_PDEATHSIG = 1
PARENT_PID = "MODELGATE_PARENT_PID"  # set by `spawn`: whose child the new process is


def spawn(command: list[str]) -> subprocess.Popen[bytes]:
    """Start `command` as a child of this process that knows it is (`end_with_parent`)."""
    return subprocess.Popen(command, env={**os.environ, PARENT_PID: str(os.getpid())})  # noqa: S603


def end_with_parent() -> None:
    """Ask Linux for SIGTERM when the parent dies, so no server outlives its gunicorn.

    A parent that died before the request was made (while this process was still
    importing: a release whose workers fail at once) sends nothing, and its child would
    run on under init, holding a model in memory: such a child ends here instead.
    """
    with contextlib.suppress(OSError, AttributeError):  # not Linux: the supervisor still ends us
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    parent = os.environ.get(PARENT_PID, "")
    if parent.isdigit() and os.getppid() != int(parent):
        raise SystemExit("modelgate: the process that started this one has ended; ending too")


def stop_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt, so a server's `finally` cleans up."""

    def stop(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)


def restart_forever(command: list[str], name: str) -> int:
    """Run `command` and run it again whenever it exits, until SIGTERM or SIGINT.

    The pause before a restart grows from 0.5 s, doubling to 10 s, and is back to 0.5 s
    once a run has lasted 30 s. The model server and each handler model are kept so.
    """
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
        child = spawn(command)
        if stopping:  # SIGTERM came while it started: `stop` saw no child to end
            child.terminate()
        code = child.wait()
        if stopping:
            break
        print(f"modelgate: {name} exited with {code}; starting it again", file=sys.stderr)
        pause = 0.5 if time.monotonic() - started > 30 else min(pause * 2, 10.0)
        time.sleep(pause)
    return 0


def supervise(path: str) -> int:
    """Run `serve(path)` in a child and start it again whenever it exits, until SIGTERM."""
    return restart_forever([sys.executable, "-m", MODULE, "--socket", path], "the model server")


def start_supervisor(path: str) -> subprocess.Popen[bytes]:
    """Start `--supervise` for `path` as a child of this process (the gunicorn master)."""
    return spawn([sys.executable, "-m", MODULE, "--supervise", "--socket", path])


def answers(path: str, timeout: float = 1.0) -> bool:
    """Whether a model server answers `info` on `path` (for tests and waiting)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            wire.send(sock, {"op": "info"})
            return bool(wire.receive(sock)[0].get("ok"))
    except (OSError, ConnectionError, ValueError):
        return False

"""Start a handler model's process and start it again when it dies (one per handler model).

The gunicorn master calls `start(model_id, path)`; the supervisor child it starts
(`server --supervise`) runs the model's server as its own child with the model
server's restart loop (`api.runtime.supervisor.restart_forever`). Both end with their parent.
"""

from __future__ import annotations

import subprocess
import sys

from api.runtime.supervisor import restart_forever, spawn

MODULE = "api.runtime.handlers.server"


def supervise(model_id: str, path: str) -> int:
    """Run the model's process and run it again whenever it exits, until SIGTERM or SIGINT."""
    command = [sys.executable, "-m", MODULE, "--model", model_id, "--socket", path]
    return restart_forever(command, f"handler model {model_id}")


def start(model_id: str, path: str) -> subprocess.Popen[bytes]:
    """Start the supervisor of `model_id`'s process, listening on `path`."""
    return spawn(
        [sys.executable, "-m", MODULE, "--supervise", "--model", model_id, "--socket", path]
    )

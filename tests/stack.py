"""The whole production path on loopback, for the fault scenarios and the load benchmark.

The shipped nginx site (TLS, a self-signed certificate) in front of gunicorn with two
workers on PostgreSQL and Redis, and a Celery worker beside it: what `fab deploy`
puts on a host, started from this checkout. Every process is stopped by its PID.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import requests

from api.config import TestConfig
from deploy.nginx_site import Site
from tests.nginx.server import API, APP, run_nginx, self_signed
from tests.services import ROOT, celery_worker, free_port, gunicorn

_PROCESS_START = 21  # the field of /proc/<pid>/stat after the command name


@dataclass
class Stack:
    """A running production path: `url` is nginx (send `Host: API`), `direct` is gunicorn."""

    url: str
    direct: str
    folder: Path
    master: int  # gunicorn's master process (a HUP rewrites its pid file)
    env: dict[str, str] = field(default_factory=dict)
    worker: subprocess.Popen | None = None  # the Celery worker (its own process group)
    worker_env: dict[str, str] = field(default_factory=dict)  # to start another one

    @property
    def app_log(self) -> Path:
        return Path(self.env.get("LOG_FILE") or self.folder / "app.log")

    def workers(self) -> list[int]:
        """The master's worker processes (not the model server), oldest first."""
        return gunicorn_workers(self.master)

    def metrics(self) -> str:
        """`/metrics` from gunicorn itself (nginx keeps it off the public site)."""
        return requests.get(f"{self.direct}/metrics", timeout=10).text

    def metric(self, name: str) -> float:
        """The sum of every sample of `name` (labels ignored)."""
        pattern = re.compile(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", re.MULTILINE)
        return sum(float(value) for _, value in pattern.findall(self.metrics()))


def gunicorn_workers(master: int) -> list[int]:
    """A gunicorn master's worker processes (its other children excluded), oldest first."""
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    command = Path(f"/proc/{master}/cmdline").read_bytes()
    workers = []
    for child in map(int, children):
        with contextlib.suppress(FileNotFoundError):
            if Path(f"/proc/{child}/cmdline").read_bytes() == command:
                workers.append(child)
    return sorted(workers, key=_started)


def rss_kib(pid: int) -> int:
    """A process's resident memory in KiB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def alive(pid: int) -> bool:
    """The process runs (a zombie, exited but not yet reaped by its parent, does not)."""
    try:
        return _stat(pid)[0] != "Z"
    except FileNotFoundError:
        return False


def _started(pid: int) -> int:
    return int(_stat(pid)[_PROCESS_START - 2])


def _stat(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name (which may hold spaces)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


@contextlib.contextmanager
def production(
    folder: Path,
    database: str,
    redis_url: str,
    *,
    models: str = "storyteller",
    env: dict[str, str] | None = None,
    batch_worker: bool = True,
) -> Iterator[Stack]:
    """Start nginx, gunicorn (2 workers) and, unless told not to, a Celery worker."""
    folder.mkdir(parents=True, exist_ok=True)
    settings = {
        "DATABASE_URL": database,
        "REDIS_URL": redis_url,
        "MODELS": models,
        "TRUSTED_PROXIES": "1",
        "USAGE_FLUSH_INTERVAL_MS": "200",
        "JWT_SECRET_KEY": TestConfig().JWT_SECRET_KEY,  # sessions minted in-process are valid
        "GUNICORN_CMD_ARGS": f"--pid {folder / 'gunicorn.pid'}",
        **(env or {}),
    }
    http_port, https_port = free_port(), free_port()
    with contextlib.ExitStack() as running:
        direct = running.enter_context(gunicorn(settings, folder, workers=2))
        worker_env = {k: v for k, v in settings.items() if k != "GUNICORN_CMD_ARGS"}
        worker = None
        if batch_worker:
            worker = running.enter_context(celery_worker(worker_env, folder))
        cert, key = self_signed(folder)
        site = Site(
            api_domain=API,
            app_domain=APP,
            upstreams=(direct.removeprefix("http://"),),
            cert=cert,
            key=key,
            web_root=str(ROOT / "web" / "dist"),
            cors_origins=(f"https://{APP}",),
            access_log=str(folder / "access.json"),
            http_listen=f"127.0.0.1:{http_port}",
            https_listen=f"127.0.0.1:{https_port}",
            https_port_suffix=f":{https_port}",
        )
        running.enter_context(run_nginx(site, folder / "nginx"))
        master = int((folder / "gunicorn.pid").read_text())
        yield Stack(
            f"https://127.0.0.1:{https_port}", direct, folder, master, settings, worker, worker_env
        )

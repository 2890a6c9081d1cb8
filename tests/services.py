"""Reaching the real services the suite needs: PostgreSQL, Redis, and gunicorn we start ourselves.

Locally a missing service skips the tests that need it, with the reason shown;
under `CI=true` it fails them, so CI can never pass by skipping.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI") == "true"
PG_SERVER_URL = os.environ.get(
    "TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def require(service: str, error: Exception | None) -> None:
    """Skip (locally) or fail (under CI) when `service` could not be reached."""
    if error is None:
        return
    message = f"{service} unavailable: {type(error).__name__}: {error}"
    if IN_CI:
        pytest.fail(f"{message} (required under CI=true)")
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"server at {url} did not answer in {timeout}s")


@contextlib.contextmanager
def gunicorn(
    env: dict[str, str], tmp_path: Path, workers: int = 2, port: int | None = None
) -> Iterator[str]:
    """Run `gunicorn -c gunicorn.conf.py wsgi:app` on a free loopback port; yield its base URL."""
    port = port or free_port()
    full_env = {
        **os.environ,
        "MODELGATE_ENV": "development",
        "SECRET_KEY": "gunicorn-test-secret-" + "s" * 32,
        "JWT_SECRET_KEY": "gunicorn-test-jwt-" + "j" * 32,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
        "LOG_FILE": str(tmp_path / "app.log"),
        "USAGE_SPOOL_DIR": str(tmp_path / "usage-spool"),
        "FILES_DIR": str(tmp_path / "files"),
        "CELERY_BROKER_DIR": str(tmp_path / "celery"),
        "MODELS": "",
        "WEB_DIST": "",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": str(workers),
        **env,
    }
    stderr = open(tmp_path / "gunicorn.stderr", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT,
        env=full_env,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{base}/healthz", process)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        stderr.close()


@contextlib.contextmanager
def celery_worker(
    env: dict[str, str], tmp_path: Path, name: str = "worker"
) -> Iterator[subprocess.Popen]:
    """Run `celery -A wsgi:celery_app worker -B` (one pool process) until the block ends.

    Its own process group, so a test can SIGKILL the worker and its pool at once.
    """
    full_env = {
        **os.environ,
        "MODELGATE_ENV": "development",
        "SECRET_KEY": "gunicorn-test-secret-" + "s" * 32,
        "JWT_SECRET_KEY": "gunicorn-test-jwt-" + "j" * 32,
        "LOG_FILE": str(tmp_path / f"{name}.log"),
        "USAGE_SPOOL_DIR": "",
        "FILES_DIR": str(tmp_path / "files"),
        "CELERY_BROKER_DIR": str(tmp_path / f"{name}-celery"),
        "MODELS": "",
        "WEB_DIST": "",
        **env,
    }
    output = open(tmp_path / f"{name}.stderr", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "wsgi:celery_app",
            "worker",
            "-B",
            "--concurrency",
            "1",
            "--loglevel",
            "WARNING",
            "--hostname",
            f"{name}@%h",
        ],
        cwd=ROOT,
        env=full_env,
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        output.close()

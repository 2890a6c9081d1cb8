"""The model server: one process for the host's embedding models, fed by the workers.

A real server process on a Unix socket; the app side is the bare inference app of
conftest.py with `MODEL_SERVER_SOCKET` set, so `embed_texts` goes over the socket.
A second server with small limits checks that idle and half-sent connections can
neither pile up threads nor stay forever.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from flask import Flask

from api.inference.service import embed_texts, texts_from_token_ids
from api.runtime.errors import QueueFull
from api.runtime.registry import models
from api.runtime.supervisor import answers
from tests.services import ROOT
from tests.stack import alive

SENTENCES = ["The frog became a prince.", "Snow fell on the black window frame.", "Gold."]


def server_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    """What a model server of all-MiniLM-L6-v2 is started with, its files under `tmp_path`."""
    return {
        **settings,
        **os.environ,
        "MODELGATE_ENV": "development",
        "MODELS": "all-minilm-l6-v2",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'unused.sqlite'}",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        "LOG_FILE": str(tmp_path / "models.log"),
    }


def start(tmp_path: Path, *extra: str, **settings: str) -> tuple[subprocess.Popen[bytes], str]:
    path = str(tmp_path / "models.sock")
    env = server_env(tmp_path, **settings)
    command = [sys.executable, "-m", "api.runtime.model_server", *extra, "--socket", path]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    give_up = time.monotonic() + 90
    while not answers(path):
        assert process.poll() is None, "the model server exited while starting"
        assert time.monotonic() < give_up, "the model server did not answer in 90 s"
        time.sleep(0.2)
    return process, path


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(timeout=30)


def remote_app(path: str) -> Flask:
    """An app whose embedding model is the server's on `path` (the registry keys it apart)."""
    app = Flask("model-server-tests")
    app.config.update(MODELS="all-minilm-l6-v2", MODEL_SERVER_SOCKET=path, MODEL_SERVER_WAIT_S=5)
    models.init_app(app)
    return app


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    process, path = start(tmp_path_factory.mktemp("model-server"))
    yield path
    stop(process)


MAX_CONNECTIONS, FRAME_TIMEOUT_S, IDLE_TIMEOUT_S = 8, 1, 4


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, str]]:
    """A server of its own with small limits: (its pid, its socket)."""
    process, path = start(
        tmp_path_factory.mktemp("limited-model-server"),
        MODEL_SERVER_MAX_CONNECTIONS=str(MAX_CONNECTIONS),
        MODEL_SERVER_FRAME_TIMEOUT_S=str(FRAME_TIMEOUT_S),
        MODEL_SERVER_IDLE_TIMEOUT_S=str(IDLE_TIMEOUT_S),
    )
    yield process.pid, path
    stop(process)


def connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server has closed `sock` (without waiting)."""
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


def thread_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def test_vectors_and_token_counts_equal_the_in_process_model(server, inference_context):
    local = embed_texts("all-minilm-l6-v2", SENTENCES)
    app = remote_app(server)
    with app.app_context():
        served = models.serve("all-minilm-l6-v2", task="embedding")
        assert type(served.model).__name__ == "RemoteEmbeddingModel"
        assert served.model.info.max_input == 256 and served.model.info.parameters > 20_000_000
        remote = embed_texts("all-minilm-l6-v2", SENTENCES)
    assert remote.token_counts == local.token_counts
    for mine, theirs in zip(remote.vectors, local.vectors, strict=True):
        assert len(mine) == 384
        assert max(abs(a - b) for a, b in zip(mine, theirs, strict=True)) < 1e-5


def test_token_ids_read_with_the_workers_own_tokenizer(server, inference_context):
    """The worker decodes token ids with its copy of the tokenizer, the server embeds text."""
    in_process = models.serve("all-minilm-l6-v2", task="embedding").tokenizer
    assert in_process is not None
    ids = [in_process.encode(text, add_special_tokens=False).ids for text in SENTENCES]
    with remote_app(server).app_context():
        texts = texts_from_token_ids("all-minilm-l6-v2", ids)
        by_ids = embed_texts("all-minilm-l6-v2", texts)
        by_text = embed_texts("all-minilm-l6-v2", SENTENCES)
    assert by_ids.token_counts == by_text.token_counts
    for mine, theirs in zip(by_ids.vectors, by_text.vectors, strict=True):
        assert max(abs(a - b) for a, b in zip(mine, theirs, strict=True)) < 1e-5


def test_concurrent_callers_each_get_their_own_vector(server):
    app = remote_app(server)
    texts = [f"Sister number {n} spun straw into gold." for n in range(24)]

    def one(text: str) -> list[float]:
        with app.app_context():
            return embed_texts("all-minilm-l6-v2", [text]).vectors[0]

    with app.app_context():
        expected = embed_texts("all-minilm-l6-v2", texts).vectors
    with ThreadPoolExecutor(12) as pool:
        answers_in_order = list(pool.map(one, texts))
    for got, want in zip(answers_in_order, expected, strict=True):
        assert max(abs(a - b) for a, b in zip(got, want, strict=True)) < 1e-5


def test_the_supervisor_restarts_a_killed_server_and_callers_recover(tmp_path):
    supervisor, path = start(tmp_path, "--supervise")
    try:
        app = remote_app(path)
        with app.app_context():
            before = embed_texts("all-minilm-l6-v2", ["A wolf."]).vectors[0]
        server_pid = int(
            subprocess.run(
                ["pgrep", "-f", "-P", str(supervisor.pid), "model_server --socket"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()[0]
        )
        os.kill(server_pid, signal.SIGKILL)
        refusals = []
        give_up = time.monotonic() + 90
        while True:
            asked = time.monotonic()
            try:
                with app.app_context():
                    after = embed_texts("all-minilm-l6-v2", ["A wolf."]).vectors[0]
                break
            except QueueFull as refused:  # what callers see while it starts again
                refusals.append((refused, time.monotonic() - asked))
                assert time.monotonic() < give_up, "the model server was not started again"
                time.sleep(0.2)
        assert refusals, "a dead server was answered for"
        refused, waited = refusals[0]
        assert refused.status == 503 and refused.headers["Retry-After"] == "1"
        assert "model server" in refused.message and waited < 1.0
        assert max(abs(a - b) for a, b in zip(before, after, strict=True)) < 1e-5
    finally:
        stop(supervisor)
    leftover = subprocess.run(["pgrep", "-f", f"model_server --socket {path}"], check=False)
    assert leftover.returncode == 1, "the server outlived its supervisor"


def embed_on_a_new_thread(app: Flask) -> list[float]:
    """One call from a thread of its own, so it opens a connection of its own."""

    def one() -> list[float]:
        with app.app_context():
            return embed_texts("all-minilm-l6-v2", ["A new thread."]).vectors[0]

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(one).result()


def test_connections_past_the_cap_are_closed_at_once_and_take_no_thread(limited_server):
    pid, path = limited_server
    app = remote_app(path)
    with app.app_context():  # this thread's pooled connection: one of the cap
        embed_texts("all-minilm-l6-v2", ["A wolf."])
    baseline = thread_count(pid)
    idle = [connect(path) for _ in range(40)]
    try:
        time.sleep(0.5)
        assert thread_count(pid) <= baseline + MAX_CONNECTIONS, "idle connections pin threads"
        still_open = [sock for sock in idle if not closed_by_server(sock)]
        assert len(still_open) < MAX_CONNECTIONS, "connections past the cap were kept"
        with app.app_context():  # a pooled connection keeps working at the cap
            assert len(embed_texts("all-minilm-l6-v2", ["A wolf."]).vectors[0]) == 384
        asked = time.monotonic()
        with pytest.raises(QueueFull) as refused:  # a new one is refused, clearly and at once
            embed_on_a_new_thread(app)
        assert refused.value.status == 503 and refused.value.headers["Retry-After"] == "1"
        assert time.monotonic() - asked < 1.0
    finally:
        for sock in idle:
            sock.close()
    give_up = time.monotonic() + 5
    while True:  # the slots come back as soon as the idle peers leave
        try:
            assert len(embed_on_a_new_thread(app)) == 384
            break
        except QueueFull:
            assert time.monotonic() < give_up, "closed connections did not free their slots"
            time.sleep(0.1)


def test_a_frame_not_finished_in_time_is_closed_even_if_it_trickles(limited_server):
    _, path = limited_server
    with connect(path) as sock:
        sock.sendall(struct.pack("!II", 100, 0) + b'{"op"')
        started = time.monotonic()
        with contextlib.suppress(OSError):  # BrokenPipeError once the server has closed it
            while time.monotonic() - started < 6:
                time.sleep(0.25)  # never quiet for a whole FRAME_TIMEOUT_S
                sock.sendall(b" ")
        closed_after = time.monotonic() - started
    assert closed_after < FRAME_TIMEOUT_S + 1.5, f"a half-sent frame was kept {closed_after:.1f} s"
    assert answers(path), "the server stopped answering normal clients"


def test_an_idle_connection_is_closed_in_time_and_pooled_clients_reconnect(limited_server):
    _, path = limited_server
    app = remote_app(path)
    with app.app_context():
        before = embed_texts("all-minilm-l6-v2", ["A wolf."]).vectors[0]
    with connect(path) as idle:
        time.sleep(IDLE_TIMEOUT_S + 1)
        assert closed_by_server(idle), "an idle connection was kept past the idle timeout"
    with app.app_context():  # its pooled connection was closed too: the client opens a new one
        after = embed_texts("all-minilm-l6-v2", ["A wolf."]).vectors[0]
    assert max(abs(a - b) for a, b in zip(before, after, strict=True)) < 1e-5


def test_a_supervisor_whose_gunicorn_ended_while_it_started_ends_too(tmp_path):
    """A release whose workers fail at once: the master is gone before its model server's
    supervisor has imported enough to ask Linux for a signal when it goes. Before, that
    supervisor and its model server ran on under init (seen left by the deploy test)."""
    path, pid_file = str(tmp_path / "models.sock"), tmp_path / "supervisor.pid"
    master = (  # start the supervisor as gunicorn.conf.py does, then end without a word
        "import os, sys; from api.runtime.supervisor import start_supervisor; "
        "open(sys.argv[2], 'w').write(str(start_supervisor(sys.argv[1]).pid)); os._exit(0)"
    )
    env = server_env(tmp_path)
    try:
        subprocess.run(
            [sys.executable, "-c", master, path, str(pid_file)], cwd=ROOT, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60, check=True,
        )  # fmt: skip
        supervisor = int(pid_file.read_text())
        give_up = time.monotonic() + 60
        while alive(supervisor) and time.monotonic() < give_up:
            time.sleep(0.2)
        assert not alive(supervisor), "the orphaned supervisor still runs"
        left = subprocess.run(["pgrep", "-f", "--", f"--socket {path}"], capture_output=True)
        assert left.returncode == 1, f"its model server still runs: {left.stdout!r}"
    finally:
        found = subprocess.run(["pgrep", "-f", "--", f"--socket {path}"], capture_output=True)
        for pid in found.stdout.split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)

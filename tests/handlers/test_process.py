"""A handler model in its own supervised process: answers, crash -> 503 then back, hang -> 504
then a fresh process, a failed setup reported while the process stays up."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from api.errors import APIError
from api.handlers.client import HandlerClient, ModelRestarting
from api.handlers.supervisor import start
from api.inference.errors import DeadlineExceeded
from tests.handlers import images

MODELS = ",".join(
    [
        "tiny=handler:tests.handlers.sample_handler:Tiny max_batch_size=2",
        "crasher=handler:tests.handlers.sample_crash:Crasher timeout_s=1",
        "nosetup=handler:tests.handlers.sample_crash:FailsSetup",
    ]
)


@pytest.fixture(scope="module")
def processes(tmp_path_factory):
    directory = tmp_path_factory.mktemp("handlers")
    env = {**os.environ, "MODELS": MODELS, "LOG_FORMAT": "text", "LOG_LEVEL": "WARNING"}
    old = dict(os.environ)
    os.environ.update(env)
    started = {
        name: start(name, str(directory / f"{name}.sock"))
        for name in ("tiny", "crasher", "nosetup")
    }
    os.environ.clear()
    os.environ.update(old)
    clients = {name: HandlerClient(name, str(directory / f"{name}.sock")) for name in started}
    for client in clients.values():
        wait_for(client, ("ready", "failed"))
    yield clients
    for supervisor in started.values():
        supervisor.terminate()
        supervisor.wait(10)


def wait_for(client, states, seconds=60.0):
    give_up = time.monotonic() + seconds
    while time.monotonic() < give_up:
        try:
            info = client.info()
            if info["state"] in states:
                return info
        except APIError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{client.model_id} never reached {states}")


def test_a_handler_answers_with_its_outputs_and_units(processes):
    outputs, units = processes["tiny"].predict({"threshold": 0.5}, {"image": images.png()}, 5.0)
    assert outputs["label"] == "red" and units == 1
    info = processes["tiny"].info()
    assert info["device"] == "cpu" and info["declaration"]["max_batch_size"] == 2


def test_an_image_that_does_not_decode_is_422_from_the_process(processes):
    with pytest.raises(APIError) as raised:
        processes["tiny"].predict({"threshold": 0.5}, {"image": images.truncated_png()[:200]}, 5.0)
    assert raised.value.status == 422 and list(raised.value.details) == ["image"]


def test_a_failed_setup_is_reported_and_its_calls_are_503(processes):
    info = processes["nosetup"].info()
    assert info["state"] == "failed"
    assert info["error"] == "FileNotFoundError: weights.pt is missing"
    with pytest.raises(APIError) as raised:
        processes["nosetup"].predict({"how": "x"}, {}, 2.0)
    assert raised.value.status == 503 and raised.value.headers["Retry-After"]


def test_a_crash_is_503_with_retry_after_then_a_new_process_serves(processes):
    client = processes["crasher"]
    assert client.predict({"how": "fine"}, {}, 2.0) == ({"ok": True}, 1)
    with pytest.raises(ModelRestarting) as raised:
        client.predict({"how": "crash"}, {}, 2.0)
    assert raised.value.status == 503 and raised.value.headers["Retry-After"] == "1"
    wait_for(client, ("ready",))
    assert client.predict({"how": "fine"}, {}, 2.0) == ({"ok": True}, 1)
    assert processes["tiny"].predict({"threshold": 0.5}, {"image": images.png()}, 5.0)[1] == 1


def test_a_hang_is_504_at_the_deadline_and_the_process_is_replaced(processes):
    client = processes["crasher"]
    started = time.monotonic()
    with pytest.raises(APIError) as raised:
        client.predict({"how": "hang"}, {}, 1.0)
    assert raised.value.status == 504 and raised.value.code == DeadlineExceeded.code
    assert time.monotonic() - started < 2.5
    first = client.info()["created"]
    time.sleep(3.5)  # three deadlines of 1 s: the process ends itself, the supervisor restarts it
    info = wait_for(client, ("ready",))
    assert info["created"] >= first
    assert client.predict({"how": "fine"}, {}, 2.0) == ({"ok": True}, 1)


def test_the_module_runs_as_a_script():
    result = subprocess.run(
        [sys.executable, "-m", "api.handlers.server", "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0 and "--model" in result.stdout

"""A handler model in its own supervised process: answers, crash -> 503 then back, hang -> 504
then a fresh process, a failed setup reported while the process stays up."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time

import pytest

from api.edge.errors import APIError
from api.runtime.errors import DeadlineExceeded
from api.runtime.handlers.client import HandlerClient, ModelRestarting
from api.runtime.handlers.supervisor import start
from tests.handlers import images

MODELS = ",".join(
    [
        "tiny=handler:tests.handlers.sample_handler:Tiny max_batch_size=2",
        "crasher=handler:tests.handlers.sample_crash:Crasher timeout_s=1",
        "nosetup=handler:tests.handlers.sample_crash:FailsSetup",
        "broken=handler:tests.handlers.sample_handler:Broken",
    ]
)


NAMES = ("tiny", "crasher", "nosetup", "broken")


@pytest.fixture(scope="module")
def processes(tmp_path_factory):
    directory = tmp_path_factory.mktemp("handlers")
    env = {**os.environ, "MODELS": MODELS, "LOG_FORMAT": "text", "LOG_LEVEL": "WARNING"}
    old = dict(os.environ)
    os.environ.update(env)
    started = {name: start(name, str(directory / f"{name}.sock")) for name in NAMES}
    os.environ.clear()
    os.environ.update(old)
    clients = {name: HandlerClient(name, str(directory / f"{name}.sock")) for name in started}
    for client in list(clients.values()):
        wait_for(client, ("ready", "failed"))
    clients["folder"] = directory
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
        [sys.executable, "-m", "api.runtime.handlers.server", "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0 and "--model" in result.stdout


def test_through_the_route_a_raising_handler_is_500_with_the_trace_id(processes, make_app):
    from tests.tokens.conftest import make_account

    app = make_app(MODELS=MODELS, HANDLER_SOCKET_DIR=str(processes["folder"]))
    headers = {"Authorization": "Bearer " + make_account(app).mint(scopes=("predict",))["token"]}
    client = app.test_client()
    failed = client.post(
        "/v1/models/broken/predict", headers=headers, json={"x": [[1], [2]], "note": "s3cr"}
    )
    assert failed.status_code == 500, failed.get_json()
    error = failed.get_json()["error"]
    assert error["code"] == "model_error" and error["trace_id"] == failed.headers["X-Trace-Id"]
    assert "s3cr" not in failed.get_data(as_text=True)
    answered = client.post(
        "/v1/models/tiny/predict",
        headers=headers,
        data={"image": (io.BytesIO(images.png()), "a.png")},
    )
    assert answered.status_code == 200, answered.get_json()
    assert answered.get_json()["usage"] == {"units": 1, "unit": "images"}
    described = client.get("/v1/models/tiny", headers=headers).get_json()
    assert described["schema"]["inputs"][0]["name"] == "image"
    ready = client.get("/readyz", environ_base={"REMOTE_ADDR": "127.0.0.1"}).get_json()
    assert ready["models"]["nosetup"] == "failed: FileNotFoundError: weights.pt is missing"
    assert ready["models"]["tiny"] == "ready"


def test_the_start_check_names_the_model_and_field_of_a_bad_declaration(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "class Bad:\n"
        "    inputs = [{'name': 'x', 'kind': 'tensor', 'shape': [0]}]\n"
        "    outputs = [{'name': 'y', 'kind': 'text'}]\n"
        "    def setup(self, device): raise AssertionError('never called')\n"
        "    def predict(self, batch): return []\n"
    )
    command = [sys.executable, "-m", "api.runtime.handlers.server", "--check"]
    env = {
        **os.environ,
        "MODELS": f"ok=handler:tests.handlers.sample_handler:Tiny,bad=handler:{bad}:Bad",
    }
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 1
    assert "model 'bad': inputs[0] x: shape must be" in result.stderr
    env["MODELS"] = "ok=handler:tests.handlers.sample_handler:Tiny"
    assert subprocess.run(command, env=env, timeout=120, check=False).returncode == 0
    # `concurrency` on a batched handler stops the start too: its batches run in turn.
    env["MODELS"] = "ok=handler:tests.handlers.sample_handler:Tiny concurrency=4"
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 1
    assert "model 'ok': concurrency applies to a streaming handler" in result.stderr

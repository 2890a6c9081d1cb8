"""Faults under load on the whole production path: nginx, gunicorn (2 workers), PostgreSQL,
Redis, a Celery worker. Each scenario keeps a load of real calls running through nginx
while something breaks, then checks what a user and an operator would: which calls
failed and how, and that nothing answered was lost (its usage row, its access line).

A gunicorn worker SIGKILLed right after answering is `tests/usage/test_live.py`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import statistics
import subprocess
import threading
import time

import pytest
import requests
import urllib3
from aiosmtpd.controller import Controller

from tests.auth.conftest import PASSWORD, Mailbox
from tests.batches.test_worker import usage_rows
from tests.faults.conftest import access_traces, assert_nothing_lost, wait_for
from tests.load import BATCH_LINE, Load, Mix, live_account
from tests.nginx.server import API
from tests.services import celery_worker, free_port
from tests.stack import alive, production
from tests.usage.test_live import own_postgres  # noqa: F401 - a fixture

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
LIGHT = {"models": 3, "chat": 1, "usage": 1}  # storyteller only: quick to start


def _grow(load: Load, count: int, timeout: float = 60.0) -> None:
    """Wait until `count` more calls have been answered (or failed)."""
    target = len(load.results) + count
    wait_for(lambda: len(load.results) >= target, timeout, f"{count} more calls")


def test_streams_finish_through_hup_and_term(tmp_path, live_database, redis_url, redis_db):
    account = live_account(live_database)
    env = {"STREAMS_PER_USER": "8"}
    with production(tmp_path, live_database, redis_url, env=env, batch_worker=False) as stack:
        mix = Mix(stack, account, {"stream": 1})
        mix.stream_tokens = 200  # long enough to be in flight when the signals come
        load = Load(mix, threads=4).start()
        try:
            _grow(load, 4)
            before = set(stack.workers())
            hup_at = time.monotonic()
            os.kill(stack.master, signal.SIGHUP)  # new workers; the old finish their streams
            wait_for(lambda: not before & set(stack.workers()), 60, "the old workers to go")
            _grow(load, 8)
            term_at = time.monotonic()
            os.kill(stack.master, signal.SIGTERM)  # stop accepting, finish what is in flight
            wait_for(lambda: not alive(stack.master), 60, "gunicorn to exit")
        finally:
            results = load.stop()
    cut = [r for r in results if r.status == 599]
    assert cut == [], cut[:3]  # not one stream ended without [DONE]
    for moment in (hup_at, term_at):  # streams were in flight at each signal, and finished
        assert [r for r in results if r.spans(moment) and r.status == 200]
    # Once gunicorn is gone, nginx answers 502 at once: refused, not cut.
    assert {r.status for r in results if r.error} <= {502}
    assert_nothing_lost(live_database, load.answered(), stack.app_log)


def test_the_log_file_rotated_under_load_loses_no_line(
    tmp_path, live_database, redis_url, redis_db
):
    account = live_account(live_database)
    with (
        production(tmp_path, live_database, redis_url, batch_worker=False) as stack,
        Load(Mix(stack, account, LIGHT), threads=3) as load,
    ):
        _grow(load, 30)
        os.rename(stack.app_log, tmp_path / "app.log.1")  # what logrotate does
        _grow(load, 30)
    assert load.errors() == []
    assert_nothing_lost(live_database, load.answered(), tmp_path / "app.log.1", stack.app_log)
    assert access_traces(stack.app_log), "the workers did not reopen the new file"


def test_a_full_log_disk_keeps_the_service_answering_and_shows_in_metrics(
    tmp_path, live_database, redis_url, redis_db
):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs for the log needs root (CI runs as root)")
    disk = tmp_path / "logdisk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(disk)], check=True)
    try:
        account = live_account(live_database)
        env = {"LOG_FILE": str(disk / "app.log")}
        with production(tmp_path, live_database, redis_url, env=env, batch_worker=False) as stack:
            filler = disk / "filler"
            with filler.open("wb", buffering=0) as file, pytest.raises(OSError):
                while True:  # until the disk is full
                    file.write(b"x" * 4096)
            with Load(Mix(stack, account, LIGHT), threads=3) as load:
                _grow(load, 30)
            # A call's access line is written just after its answer is sent: wait for the last.
            wait_for(lambda: stack.metric("log_lines_dropped_total") >= 30, 10, "30 drops")
            dropped = stack.metric("log_lines_dropped_total")
            filler.unlink()
            with Load(Mix(stack, account, {"models": 1}), threads=1) as after:
                _grow(after, 5)
            logged_after = access_traces(disk / "app.log", cut_lines=True)
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
    assert load.errors() == [] and len(load.answered()) >= 20  # answered all the same
    assert dropped >= 30  # and the operator can see the lines are lost
    assert after.errors() == [] and all(logged_after[t] == 1 for t in after.answered())


def _slow_client(port: int, opened: list, stop: threading.Event) -> None:
    """A TLS client that sends a request body one byte a second (a slowloris)."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=30) as raw,
        context.wrap_socket(raw, server_hostname=API) as conn,
    ):
        conn.sendall(
            f"POST /v1/embeddings HTTP/1.1\r\nHost: {API}\r\nContent-Type: application/json\r\n"
            "Content-Length: 100000\r\n\r\n".encode()
        )
        opened.append(conn)
        while not stop.wait(1.0):
            conn.sendall(b" ")


def test_slow_clients_do_not_starve_the_others(tmp_path, live_database, redis_url, redis_db):
    account = live_account(live_database)
    with production(tmp_path, live_database, redis_url, batch_worker=False) as stack:
        with Load(Mix(stack, account, {"models": 1}), threads=2) as quiet:
            _grow(quiet, 100)
        port = int(stack.url.rsplit(":", 1)[1])
        opened: list = []
        stop = threading.Event()
        slow = [
            threading.Thread(target=_slow_client, args=(port, opened, stop), daemon=True)
            for _ in range(40)  # more than gunicorn's 2 x 8 threads; under nginx's 64 per IP
        ]
        for thread in slow:
            thread.start()
        wait_for(lambda: len(opened) == 40, 30, "40 slow clients connected")
        try:
            with Load(Mix(stack, account, {"models": 1}), threads=2) as busy:
                _grow(busy, 100)
            held = sum(thread.is_alive() for thread in slow)
        finally:
            stop.set()
    assert busy.errors() == []
    assert held == 40  # the slow clients were still connected throughout
    quiet_p50 = statistics.median(r.seconds for r in quiet.results)
    busy_p50 = statistics.median(r.seconds for r in busy.results)
    assert busy_p50 < quiet_p50 * 5 + 0.05, (quiet_p50, busy_p50)


def test_redis_stopped_and_restarted_under_load(tmp_path, live_database, own_redis):
    """Redis is the limiter's store and the batch queue: it comes back empty (no persistence)."""
    url, start, stop = own_redis
    account = live_account(live_database)
    env = {"BATCH_QUEUE_GRACE_S": "5", "BATCH_RECOVER_S": "2"}  # recovery in seconds
    with production(tmp_path, live_database, url, env=env) as stack:
        mix = Mix(stack, account, {**LIGHT, "batch": 0.3})
        with Load(mix, threads=3) as load:
            _grow(load, 30)
            stop()
            _grow(load, 30)  # answered without Redis: limits per process
            degraded = stack.metric("rate_limit_storage_degraded")
            start()
            _grow(load, 30)

        def states() -> list[dict]:
            return [mix.get(f"/v1/batches/{batch}").json() for batch in mix.batches]

        # Messages queued before the restart are gone with Redis, and those of batches
        # created while it was down were never sent: the recovery queues them again.
        try:
            wait_for(lambda: all(b["status"] == "completed" for b in states()), 60, "the batches")
        except AssertionError:
            raise AssertionError([(b["id"], b["status"]) for b in states()]) from None
        outputs = [mix.get(f"/v1/files/{b['output_file_id']}/content").text for b in states()]
    assert load.errors() == [], load.errors()[:3]
    assert degraded == 1
    assert_nothing_lost(live_database, load.answered(), stack.app_log)
    assert len(mix.batches) >= 3
    for output in outputs:  # each line done once
        custom_ids = [json.loads(line)["custom_id"] for line in output.splitlines()]
        assert len(custom_ids) == 2 == len(set(custom_ids))


def test_the_batch_worker_killed_mid_batch_under_load(tmp_path, live_database, redis_url, redis_db):
    """SIGKILL to the Celery worker and its pool mid-batch; a new worker finishes the batch.

    Each chat line is a chunk of its own (part file, usage row, marker), so 20 of 60
    lines done is mid-batch.
    """
    account = live_account(live_database)
    env = {"BATCH_LEASE_S": "3", "BATCH_RECOVER_S": "1"}
    body = {"model": "storyteller", "messages": [{"role": "user", "content": "Hi"}]}
    lines = [
        {"custom_id": f"line-{n}", **BATCH_LINE, "body": {**body, "max_tokens": 4}}
        for n in range(60)
    ]
    trace = f"killed-{time.monotonic_ns()}"
    with production(tmp_path, live_database, redis_url, env=env) as stack:
        mix = Mix(stack, account, LIGHT)
        with requests.Session() as session:
            batch_id = mix.submit_batch(session, lines, trace).json()["id"]

        def state() -> dict:
            return mix.get(f"/v1/batches/{batch_id}").json()

        assert stack.worker is not None
        with Load(mix, threads=2) as load:
            wait_for(lambda: state()["request_counts"]["completed"] >= 20, 120, "20 lines done")
            os.killpg(stack.worker.pid, signal.SIGKILL)  # the worker and its pool process
            stack.worker.wait()
            halfway = state()
            with celery_worker(stack.worker_env, tmp_path, name="second"):
                wait_for(lambda: state()["status"] == "completed", 180, "the batch to complete")
        done = state()
        output = mix.get(f"/v1/files/{done['output_file_id']}/content").text
    assert halfway["status"] == "in_progress" and halfway["request_counts"]["completed"] < 60
    assert done["request_counts"] == {"total": 60, "completed": 60, "failed": 0}
    custom_ids = sorted(json.loads(line)["custom_id"] for line in output.splitlines())
    assert custom_ids == sorted(line["custom_id"] for line in lines)  # each line once
    rows = usage_rows(live_database, trace)
    assert len(rows) == 60 == len({row[0] for row in rows})  # metered once each
    assert load.errors() == []
    assert_nothing_lost(live_database, load.answered(), stack.app_log)


def test_postgresql_restarted_under_load(tmp_path, own_postgres, redis_url, redis_db):  # noqa: F811
    url, start, stop = own_postgres
    account = live_account(url)
    with (
        production(tmp_path, url, redis_url, batch_worker=False) as stack,
        Load(Mix(stack, account, {"models": 3, "chat": 1}), threads=3) as load,
    ):
        _grow(load, 30)
        stop()
        ready = requests.get(stack.url + "/readyz", headers={"Host": API}, verify=False, timeout=10)
        _grow(load, 20)
        start()
        back = len(load.results)
        _grow(load, 40)
    assert ready.status_code == 503
    # Calls are answered from the principal cache and the usage spool while it is down;
    # whatever did fail failed as 503, and nothing fails once it is back.
    assert {r.status for r in load.errors()} <= {503}
    assert [r for r in load.results[back + 10 :] if r.error] == []
    assert_nothing_lost(url, load.answered(), stack.app_log)


def test_smtp_down_at_sign_up_the_email_arrives_once_it_is_back(
    tmp_path, live_database, redis_url, redis_db
):
    account = live_account(live_database)
    mail_port = free_port()
    env = {
        "MAIL_SERVER": "127.0.0.1",
        "MAIL_PORT": str(mail_port),
        "MAIL_RETRY_DELAYS_S": "1,1,2,2,4,8",
        "FRONTEND_URL": "https://app.modelgate.test",
    }
    box = Mailbox()
    with production(tmp_path, live_database, redis_url, env=env, batch_worker=False) as stack:

        def register(address: str) -> requests.Response:
            return requests.post(
                stack.url + "/v1/auth/register",
                headers={"Host": API},
                json={"email": address, "password": PASSWORD},
                verify=False,
                timeout=10,
            )

        with Load(Mix(stack, account, {"models": 1}), threads=1) as load:
            down = register("patient@example.org")  # nothing listens on the mail port
            time.sleep(1.5)  # a first try and a retry fail
            controller = Controller(box, hostname="127.0.0.1", port=mail_port)
            controller.start()
            try:
                up = register("prompt@example.org")
                late = box.wait_for("patient@example.org", "Confirm", timeout=30)
                prompt = box.wait_for("prompt@example.org", "Confirm", timeout=30)
                time.sleep(2)  # past the next retry delay: a delivered email is not sent again
                again = [m["To"] for m in box.messages]
            finally:
                controller.stop()
    assert down.status_code == up.status_code == 202 and down.json() == up.json()
    assert late["Subject"] == prompt["Subject"] and again == []  # each arrived once
    assert load.errors() == []
    retries = [line for line in stack.app_log.read_text().splitlines() if "retrying in" in line]
    assert retries and "patient@example.org" not in "".join(retries)

"""`fab deploy` for real: two app hosts (sshd on 127.0.0.2 and 127.0.0.3, each with its own
deploy root), one nginx in front with a self-signed certificate, PostgreSQL and Redis.

The hosts are provisioned first and deployed to by a deploy user who may sudo, as on a
server. They have no systemd, so the fabfile's `process` service manager runs gunicorn
(as the service user), with the embedding model loaded as in production: a host that
restarts cannot answer for as long as the model loads. A steady embeddings load through
nginx times every call while the deploys happen, against a baseline without a deploy.
"""

from __future__ import annotations

import dataclasses
import os
import re
import statistics
import subprocess
import threading
import time
from pathlib import Path

import psycopg
import pytest
import requests
import urllib3

from deploy import rotation
from deploy.nginx_site import FAIL_TIMEOUT_S, Site, set_down, upstream_server, upstream_states
from deploy.remote import Systemd
from deploy.settings import host_settings
from tests.deploy.hosts import (
    HOSTS,
    checkout,
    fab,
    log_file,
    output,
    stop_app,
    write_env,
    write_settings,
)
from tests.load import live_account
from tests.nginx.server import API, NGINX, run_nginx, self_signed
from tests.services import ROOT, free_port

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
SLOWER_BY_AT_MOST_S = 1.0  # than the slowest call of the baseline, during any deploy phase


@dataclasses.dataclass
class Phase:
    name: str
    seconds: list[float] = dataclasses.field(default_factory=list)
    failures: list[str] = dataclasses.field(default_factory=list)

    @property
    def slowest(self) -> float:
        return max(self.seconds)

    def __str__(self) -> str:
        median = statistics.median(self.seconds)
        return (
            f"{self.name}: {len(self.seconds)} calls, p50 {median:.3f} s, "
            f"max {self.slowest:.3f} s, {len(self.failures)} failed"
        )


class Load:
    """Embeddings calls through nginx from one thread, `RATE` a second, for as long as the block.

    Each call opens a connection of its own: a kept-alive one may be closed by nginx's
    reload just as a call is sent on it, which a client retries (docs/decisions.md).
    """

    RATE = 4

    def __init__(self, url: str, token: str, name: str) -> None:
        self.url = url
        self.headers = {"Host": API, "Authorization": f"Bearer {token}"}
        self.phase = Phase(name)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        body = {"model": "all-minilm-l6-v2", "input": "A sentence to embed while hosts change."}
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                answer = requests.post(
                    self.url, json=body, headers=self.headers, verify=False, timeout=30
                )
                if answer.status_code != 200:
                    self.phase.failures.append(f"{answer.status_code} {answer.text[:200]}")
            except requests.RequestException as error:
                self.phase.failures.append(repr(error))
            self.phase.seconds.append(time.monotonic() - started)
            self._stop.wait(max(0.0, started + 1 / self.RATE - time.monotonic()))

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        time.sleep(1)  # calls after the last host came back count too
        self._stop.set()
        self._thread.join()
        print(self.phase)


def current(root: Path) -> str:
    return os.path.basename(os.readlink(root / "current"))


def on_disk(root: Path) -> list[str]:
    return sorted(os.listdir(root / "releases"))


def assert_no_failure_nor_stall(phase: Phase, baseline: Phase) -> None:
    assert phase.failures == [], f"{phase}: {phase.failures[:5]}"
    assert phase.slowest <= baseline.slowest + SLOWER_BY_AT_MOST_S, f"{phase} against {baseline}"


def test_deploys_under_load_neither_fail_nor_stall_and_rollback_skips_a_failed_release(
    tmp_path, sshd, deploy_user, deploy_area, live_database, redis_db
):
    source = checkout(tmp_path / "source")
    binds = {host: f"{host}:{free_port()}" for host in HOSTS}
    roots = {host: deploy_area / f"root-{host}" for host in HOSTS}
    first_host, second_host = (roots[host] for host in HOSTS)
    hosts = {}
    for host in HOSTS:
        env = tmp_path / f"env-{host}"
        write_env(
            env, database=live_database, bind=binds[host], root=roots[host],
            models="all-minilm-l6-v2",
        )  # fmt: skip
        hosts[host] = {"root": str(roots[host]), "bind": binds[host], "env_file": str(env)}
    cert, key = self_signed(tmp_path)
    https_port = free_port()
    site = Site(
        api_domain=API,
        app_domain="app.modelgate.test",
        upstreams=tuple(binds.values()),
        cert=cert,
        key=key,
        web_root=str(source / "web" / "dist"),
        cors_origins=("https://app.modelgate.test",),
        access_log=str(tmp_path / "access.json"),
        http_listen=f"127.0.0.1:{free_port()}",
        https_listen=f"127.0.0.1:{https_port}",
    )
    proxy = tmp_path / "nginx"  # run_nginx's prefix: nginx.conf, site/snippets/, nginx.pid
    nginx_cli = f"{NGINX} -c {proxy}/nginx.conf -p {proxy}"
    upstreams = proxy / "site" / "snippets" / "upstreams.conf"
    nginx = {
        "host": HOSTS[0],  # nginx runs on this machine, which the first host's sshd is
        "upstreams": str(upstreams),
        "reload": f"{nginx_cli} -t -q && {nginx_cli} -s reload",
    }
    ssh = {**sshd, "user": deploy_user}
    settings = write_settings(tmp_path / "deploy.toml", ssh, source, hosts, keep=2, nginx=nginx)
    base = f"https://127.0.0.1:{https_port}"
    try:
        with run_nginx(site, proxy):
            provisioned = fab(settings, "provision")
            assert provisioned.returncode == 0, output(provisioned)

            # The first deploy: a release on both hosts, migrated once, both serving.
            first = fab(settings, "deploy")
            assert first.returncode == 0, output(first)
            assert first.stdout.count("migrating the database") == 1
            release_one = current(first_host)
            assert current(second_host) == release_one
            with psycopg.connect(live_database.replace("+psycopg", "")) as connection:
                assert connection.execute("select version_num from alembic_version").fetchone()
            token = live_account(live_database).token
            url = f"{base}/v1/embeddings"
            with Load(url, token, "baseline, no deploy") as load:
                time.sleep(10)
            baseline = load.phase
            assert baseline.failures == [], baseline.failures[:5]

            # A release that cannot start: the wait ends when gunicorn exits, the first host
            # goes back on its own, the failed release is deleted, no call fails or stalls.
            (source / "wsgi.py").write_text("raise RuntimeError('a broken release')\n")
            with Load(url, token, "failed deploy, rolled back") as load:
                broken = fab(settings, "deploy")
            said = output(broken)
            assert broken.returncode != 0
            assert "did not become ready; rolled back" in said, said
            exited = re.search(r"gunicorn exited after (\d+) s", said)  # not ready_timeout_s
            assert exited and int(exited.group(1)) < 60, said
            assert "RuntimeError: a broken release" in said  # the end of gunicorn's log
            assert current(first_host) == release_one == current(second_host)
            assert on_disk(first_host) == [release_one] == on_disk(second_host)
            assert_no_failure_nor_stall(load.phase, baseline)

            # A deploy cut short earlier left a release that never went live: never kept.
            shipped = first_host / "releases"
            cut_short = shipped / f"{release_one}-cut-short"
            subprocess.run(["cp", "-a", shipped / release_one, cut_short], check=True)
            (cut_short / ".went-live").unlink()
            (source / "wsgi.py").write_text((ROOT / "wsgi.py").read_text())

            # A good deploy under load: each host drained, restarted, ready, then back.
            with Load(url, token, "second deploy") as load:
                second = fab(settings, "deploy")
            assert second.returncode == 0, output(second)
            release_two = current(first_host)
            assert release_two > release_one and current(second_host) == release_two
            # keep = 2: the last good release before stays, what never went live does not.
            assert on_disk(first_host) == [release_one, release_two] == on_disk(second_host)
            assert upstream_states(upstreams.read_text()) == dict.fromkeys(binds.values(), True)
            assert_no_failure_nor_stall(load.phase, baseline)

            # `fab rollback` returns to the last release that went live, not the failed one.
            with Load(url, token, "fab rollback") as load:
                back = fab(settings, "rollback")
            assert back.returncode == 0, output(back)
            assert current(first_host) == release_one == current(second_host)
            assert_no_failure_nor_stall(load.phase, baseline)
            status = fab(settings, "status")
            assert status.stdout.count(f"release {release_one}, running, readyz") == 2
            assert status.stdout.count("in nginx's rotation") == 2, status.stdout

            # `fab logs` shows the log the env file's LOG_FILE names.
            logs = fab(settings, "logs", "--lines", "5", hosts=(HOSTS[0],))
            assert logs.returncode == 0 and '"service.name"' in logs.stdout, output(logs)
            assert log_file(first_host).exists()
            print(baseline)
    finally:
        for root in roots.values():
            stop_app(root)


def test_a_drained_host_is_marked_down_and_nothing_else_changes():
    text = "\n".join(upstream_server(address) for address in ("10.0.0.1:8000", "10.0.0.2:8000"))
    text = text.replace("10.0.0.2:8000 ", "10.0.0.2:8000 weight=2 ")
    drained = set_down(text, "10.0.0.2:8000", down=True)
    assert upstream_states(drained) == {"10.0.0.1:8000": True, "10.0.0.2:8000": False}
    assert "weight=2" in drained and drained.splitlines()[0] == text.splitlines()[0]
    assert set_down(drained, "10.0.0.2:8000", down=False) == text
    with pytest.raises(ValueError, match=r"10\.0\.0\.3:8000"):
        set_down(text, "10.0.0.3:8000", down=True)


def test_a_host_goes_down_only_once_nginx_can_have_taken_back_the_last(monkeypatch):
    """`settle`, without [nginx]: nginx skips a refused host for FAIL_TIMEOUT_S; stopping the
    next one sooner left it no live upstream (502s under load)."""
    host = host_settings({"defaults": {"root": "/srv/modelgate", "bind": "h:1"}}, "h")
    assert host.settle_s > FAIL_TIMEOUT_S
    monkeypatch.setitem(rotation._RUN, "ready_at", time.monotonic())  # a host just came up
    short = dataclasses.replace(host, settle_s=0.3)
    started = time.monotonic()
    rotation.settle(short)
    assert 0.25 <= time.monotonic() - started < 1.0
    started = time.monotonic()
    rotation.settle(short)  # the window has passed: no wait
    assert time.monotonic() - started < 0.05


class Shown:
    """What a fake host answers to `systemctl show`, one state after another."""

    def __init__(self, *states: str) -> None:
        self.states = list(states)
        self.ok = True

    def run(self, command: str, **_: object) -> Shown:
        self.stdout = self.states.pop(0) if "systemctl show" in command else ""
        return self

    sudo = run


@pytest.mark.parametrize(
    ("later", "gone"),
    [
        ("ActiveState=activating\nSubState=start\nNRestarts=0", False),  # loading the models
        ("ActiveState=active\nSubState=running\nNRestarts=0", False),
        ("ActiveState=activating\nSubState=auto-restart\nNRestarts=0", True),  # it exited
        ("ActiveState=active\nSubState=running\nNRestarts=1", True),  # exited, started again
        ("ActiveState=failed\nSubState=failed\nNRestarts=0", True),
    ],
)
def test_under_systemd_a_gunicorn_that_exited_is_gone(later, gone):
    host = Shown("ActiveState=active\nSubState=running\nNRestarts=0", later)
    manager = Systemd(host, "/srv/modelgate", "modelgate", "/etc/modelgate/env")
    manager.restart()
    assert manager.gone() is gone

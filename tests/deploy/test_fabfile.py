"""`fab deploy` for real: two app hosts (sshd on 127.0.0.2 and 127.0.0.3, each with its own
deploy root), one nginx in front with a self-signed certificate, PostgreSQL and Redis.

The hosts are provisioned first and deployed to by a deploy user who may sudo, as on a
server. They have no systemd, so the fabfile's `process` service manager runs gunicorn
(as the service user). A constant load through nginx counts every failed request while
deploys happen.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import threading
import time
from pathlib import Path

import psycopg
import requests
import urllib3

from deploy import fabfile
from deploy.nginx_site import FAIL_TIMEOUT_S, Site
from tests.deploy.hosts import HOSTS, fab, output, stop_app, write_env, write_settings
from tests.nginx.server import API, run_nginx, self_signed
from tests.services import ROOT, free_port

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)


class Load:
    """Constant requests through nginx in two threads; every failure is kept."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ok = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(2)]

    def _run(self) -> None:
        with requests.Session() as session:
            while not self._stop.is_set():
                try:
                    answer = session.get(self.url, headers={"Host": API}, verify=False, timeout=10)
                    if answer.status_code == 200:
                        self.ok += 1
                    else:
                        self.failures.append(f"{answer.status_code} {answer.text[:100]}")
                except requests.RequestException as error:
                    self.failures.append(repr(error))
                time.sleep(0.01)

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


def current(root: Path) -> str:
    return os.path.basename(os.readlink(root / "current"))


def test_deploy_to_two_hosts_under_load_with_rollback(
    tmp_path, sshd, deploy_user, deploy_area, live_database, redis_db
):
    source = tmp_path / "source"
    skipped = (".git", ".venv", "node_modules", ".mypy_cache", ".hypothesis", "instance")
    excludes = [f"--exclude={name}" for name in skipped]
    subprocess.run(["rsync", "-a", *excludes, f"{ROOT}/", f"{source}/"], check=True)
    binds = {host: f"{host}:{free_port()}" for host in HOSTS}
    roots = {host: deploy_area / f"root-{host}" for host in HOSTS}
    hosts = {}
    for host in HOSTS:
        env = tmp_path / f"env-{host}"
        write_env(env, database=live_database, bind=binds[host], root=roots[host])
        hosts[host] = {"root": str(roots[host]), "bind": binds[host], "env_file": str(env)}
    ssh = {**sshd, "user": deploy_user}
    settings = write_settings(tmp_path / "deploy.toml", ssh, source, hosts)
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
    readyz = f"https://127.0.0.1:{https_port}/readyz"
    try:
        with run_nginx(site, tmp_path / "nginx"):
            provisioned = fab(settings, "provision")
            assert provisioned.returncode == 0, output(provisioned)

            # The first deploy: a release on both hosts, migrated once, both serving.
            first = fab(settings, "deploy")
            assert first.returncode == 0, output(first)
            assert first.stdout.count("migrating the database") == 1
            release_one = current(roots[HOSTS[0]])
            assert current(roots[HOSTS[1]]) == release_one
            with psycopg.connect(live_database.replace("+psycopg", "")) as connection:
                assert connection.execute("select version_num from alembic_version").fetchone()
            answer = requests.get(readyz, headers={"Host": API}, verify=False, timeout=10)
            assert answer.status_code == 200

            # A second deploy under constant load: not one request fails.
            with Load(readyz) as load:
                second = fab(settings, "deploy")
                time.sleep(1)
            assert second.returncode == 0, output(second)
            release_two = current(roots[HOSTS[0]])
            assert release_two > release_one and current(roots[HOSTS[1]]) == release_two
            assert load.ok > 50 and load.failures == [], load.failures[:5]

            # A release that cannot start: rolled back by itself, the service answers throughout.
            (source / "wsgi.py").write_text("raise RuntimeError('a broken release')\n")
            with Load(readyz) as load:
                broken = fab(settings, "deploy")
                time.sleep(1)
            assert broken.returncode != 0
            assert "did not become ready; rolled back" in broken.stdout + broken.stderr
            assert current(roots[HOSTS[0]]) == release_two == current(roots[HOSTS[1]])
            assert load.ok > 20 and load.failures == [], load.failures[:5]

            # `fab rollback` returns to the release before.
            back = fab(settings, "rollback")
            assert back.returncode == 0, output(back)
            assert current(roots[HOSTS[0]]) == release_one == current(roots[HOSTS[1]])
            answer = requests.get(readyz, headers={"Host": API}, verify=False, timeout=10)
            assert answer.status_code == 200
            status = fab(settings, "status")
            assert status.stdout.count(f"release {release_one}, running, readyz") == 2
    finally:
        for root in roots.values():
            stop_app(root)


def test_a_host_goes_down_only_once_nginx_can_have_taken_back_the_last(monkeypatch):
    """`settle`: nginx skips a refused host for FAIL_TIMEOUT_S; stopping the next one sooner
    left it no live upstream (502s under load)."""
    host = fabfile.host_settings({"defaults": {"root": "/srv/modelgate", "bind": "h:1"}}, "h")
    assert host.settle_s > FAIL_TIMEOUT_S
    monkeypatch.setitem(fabfile._RUN, "ready_at", time.monotonic())  # a host just came up
    short = dataclasses.replace(host, settle_s=0.3)
    started = time.monotonic()
    fabfile.settle(short)
    assert 0.25 <= time.monotonic() - started < 1.0
    started = time.monotonic()
    fabfile.settle(short)  # the window has passed: no wait
    assert time.monotonic() - started < 0.05

"""`fab deploy` for real: two app hosts (sshd on 127.0.0.2 and 127.0.0.3, each with its own
deploy root), one nginx in front with a self-signed certificate, PostgreSQL and Redis.

The hosts have no systemd, so the fabfile's `process` service manager runs gunicorn.
A constant load through nginx counts every failed request while deploys happen.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import requests
import urllib3

from deploy import fabfile
from deploy.nginx_site import FAIL_TIMEOUT_S, Site
from tests.nginx.server import API, run_nginx, self_signed
from tests.services import ROOT, free_port

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
HOSTS = ("127.0.0.2", "127.0.0.3")
SSHD = "/usr/sbin/sshd"


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[dict]:
    """One sshd per host address, root login with a key of the test's own."""
    if not Path(SSHD).exists() or shutil.which("rsync") is None:
        pytest.fail("openssh-server and rsync are needed (.ci/run installs them)")
    Path("/run/sshd").mkdir(exist_ok=True)
    key, host_key = tmp_path / "id_ed25519", tmp_path / "host_ed25519"
    for path in (key, host_key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    (tmp_path / "authorized_keys").write_text((tmp_path / "id_ed25519.pub").read_text())
    port = free_port()
    public = (tmp_path / "host_ed25519.pub").read_text().split()[:2]
    (tmp_path / "known_hosts").write_text(
        "".join(f"[{host}]:{port} {' '.join(public)}\n" for host in HOSTS)
    )
    processes = []
    for host in HOSTS:
        config = tmp_path / f"sshd-{host}.conf"
        config.write_text(
            f"ListenAddress {host}:{port}\nHostKey {host_key}\nPidFile {tmp_path}/sshd-{host}.pid\n"
            f"AuthorizedKeysFile {tmp_path}/authorized_keys\nPasswordAuthentication no\n"
            "PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\n"
            "Subsystem sftp internal-sftp\n"
        )
        processes.append(subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)]))
    time.sleep(0.5)
    try:
        yield {"port": port, "key": str(key), "known_hosts": str(tmp_path / "known_hosts")}
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)


def write_settings(tmp: Path, ssh: dict, database: str, source: Path, binds: dict) -> Path:
    lines = [
        "build_web = false",
        f'source = "{source}"',
        "[ssh]",
        f'user = "root"\nkey = "{ssh["key"]}"\nknown_hosts = "{ssh["known_hosts"]}"',
        f"port = {ssh['port']}",
        "[defaults]",
        f'python = "{sys.executable}"',
        'service = "process"\ninstall_requirements = false\nkeep = 3\nready_timeout_s = 40',
    ]
    for host in HOSTS:
        root = tmp / f"root-{host}"
        (root / "shared" / "log").mkdir(parents=True)
        env = root / "shared" / "env"
        env.write_text(
            f"DATABASE_URL={database}\nREDIS_URL=redis://127.0.0.1:6379/0\nMODELS=\n"
            f"GUNICORN_BIND={binds[host]}\nGUNICORN_WORKERS=2\nMODELGATE_ENV=development\n"
            f"SECRET_KEY={'s' * 40}\nJWT_SECRET_KEY={'j' * 40}\nTRUSTED_PROXIES=1\n"
            f"LOG_FILE={root}/shared/log/app.log\n"
            f"PROMETHEUS_MULTIPROC_DIR={root}/shared/prometheus\n"
            f"USAGE_SPOOL_DIR={root}/shared/spool\n"
        )
        lines += [
            f'[hosts."{host}"]',
            f'root = "{root}"\nbind = "{binds[host]}"\nenv_file = "{env}"',
        ]
    path = tmp / "deploy.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def fab(settings: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    fab_bin = Path(sys.executable).parent / "fab"
    return subprocess.run(
        [str(fab_bin), "-r", str(ROOT / "deploy"), "-H", ",".join(HOSTS), *arguments],
        env={**os.environ, "MODELGATE_DEPLOY": str(settings)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


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


def stop_apps(tmp: Path) -> None:
    for host in HOSTS:
        pidfile = tmp / f"root-{host}" / "shared" / "gunicorn.pid"
        if pidfile.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pidfile.read_text()), signal.SIGTERM)


def test_deploy_to_two_hosts_under_load_with_rollback(tmp_path, sshd, live_database, redis_db):
    source = tmp_path / "source"
    skipped = (".git", ".venv", "node_modules", ".mypy_cache", ".hypothesis", "instance")
    excludes = [f"--exclude={name}" for name in skipped]
    subprocess.run(["rsync", "-a", *excludes, f"{ROOT}/", f"{source}/"], check=True)
    binds = {host: f"{host}:{free_port()}" for host in HOSTS}
    settings = write_settings(tmp_path, sshd, live_database, source, binds)
    roots = {host: tmp_path / f"root-{host}" for host in HOSTS}
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
            # The first deploy: a release on both hosts, migrated once, both serving.
            first = fab(settings, "deploy")
            assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
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
            assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
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
            assert back.returncode == 0, back.stdout[-3000:] + back.stderr[-3000:]
            assert current(roots[HOSTS[0]]) == release_one == current(roots[HOSTS[1]])
            answer = requests.get(readyz, headers={"Host": API}, verify=False, timeout=10)
            assert answer.status_code == 200
            status = fab(settings, "status")
            assert status.stdout.count(f"release {release_one}, running, readyz") == 2
    finally:
        stop_apps(tmp_path)


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

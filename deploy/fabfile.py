"""Ship modelgate to one or more app hosts: `fab -r deploy -H host1,host2 deploy`.

Settings come from a TOML file (`MODELGATE_DEPLOY`, default `deploy/deploy.toml`; see
`deploy.example.toml`): the SSH user and key, each host's deploy root, the Python
environment, the service manager, how many releases to keep. A deploy root holds
`releases/<UTC timestamp>/`, `current` (a symlink to one of them), and `shared/`
(the venv, and the only folders the service user may write: `instance/`, `log/`, `run/`).
The SSH user (the deploy user) owns the code, the venv and the releases; the service user
that runs them can read them but not write them. The env file stays root-only: gunicorn
and the migrations get its values from root, through systemd or sudo.

Every connection checks the host's SSH key against the settings' `known_hosts` and
refuses a host whose key is missing or different (deploy/remote.py).

`deploy` builds the web app here once, then for every host: rsync the release,
install its requirements, run the migrations as the service user (once per deploy, on
the first host), switch `current` atomically (`ln -s` to a temporary name, then
`mv -T`), restart through the service manager, and wait for `/readyz`. Hosts go one at
a time, so the others keep answering behind nginx. If a host does not become ready,
every host this deploy switched goes back to its previous release, and the deploy says why.

Service managers (`service` in the settings): `systemd` (production: the unit in
`deploy/systemd/`) and `process` (gunicorn started and stopped by its pid file, for
hosts without systemd, such as the test hosts). Both answer to `start`, `stop`,
`restart` and `running`.
"""

from __future__ import annotations

import functools
import io
import os
import shlex
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from fabric import Connection, task
from invoke.exceptions import Exit

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))  # `fab -r deploy` puts only deploy/ on the path

from deploy.nginx_site import FAIL_TIMEOUT_S  # noqa: E402
from deploy.remote import as_root, as_service_user, known_hosts_file, open_connection  # noqa: E402
from deploy.templates import service_unit  # noqa: E402

_RUN: dict = {}  # one `fab -H a,b deploy` run: its release name, what it switched, if migrated
EXCLUDES = (
    ".git", ".venv", "node_modules", "web/node_modules", "instance", ".env", "*.db",
    "*.sqlite", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache",
    ".schemathesis", ".hypothesis", "docs/screenshots", "web/e2e/output",
)  # fmt: skip
DATA_DIRS = ("instance", "log", "run")  # under shared/: all that the service user may write


@dataclass(frozen=True)
class HostSettings:
    """What one host needs: where its deploy root is and how its app is reached and run."""

    root: str
    user: str  # the service user: runs gunicorn and the migrations, writes only DATA_DIRS
    bind: str  # gunicorn's address on that host, for the health gate
    python: str  # the interpreter whose venv the release links to
    env_file: str  # the settings gunicorn and the migrations read (root-only in production)
    service: str  # "systemd" or "process"
    install_requirements: bool
    keep: int
    ready_timeout_s: float
    settle_s: float  # between one host ready and the next going down: above nginx's fail_timeout


def settings_file() -> Path:
    return Path(os.environ.get("MODELGATE_DEPLOY", PROJECT / "deploy" / "deploy.toml"))


@functools.cache
def load_settings() -> dict:
    """The deploy settings, read once per `fab` run."""
    path = settings_file()
    if not path.exists():
        raise Exit(f"No deploy settings at {path}: copy deploy/deploy.example.toml there.")
    with path.open("rb") as file:
        return tomllib.load(file)


def host_settings(settings: dict, host: str) -> HostSettings:
    merged = {**settings.get("defaults", {}), **settings.get("hosts", {}).get(host, {})}
    return HostSettings(
        root=merged["root"],
        user=merged.get("service_user", settings.get("provision", {}).get("user", "modelgate")),
        bind=merged["bind"],
        python=merged.get("python", "/usr/bin/python3"),
        env_file=merged.get("env_file", "/etc/modelgate/env"),
        service=merged.get("service", "systemd"),
        install_requirements=bool(merged.get("install_requirements", True)),
        keep=int(merged.get("keep", 5)),
        ready_timeout_s=float(merged.get("ready_timeout_s", 120)),
        settle_s=float(merged.get("settle_s", FAIL_TIMEOUT_S + 1)),
    )


def connect(c: Connection) -> Connection:
    """The task's host, connected with the settings' SSH options once its key is checked."""
    return open_connection(c.host, load_settings().get("ssh", {}), c.user, c.port)


# --- service managers ---------------------------------------------------------------


class Systemd:
    """Production: the modelgate unit (graceful stop within TimeoutStopSec, restart on failure)."""

    def __init__(self, conn: Connection, host: HostSettings) -> None:
        self.conn = conn

    def start(self) -> None:
        self.conn.sudo("systemctl start modelgate")

    def stop(self) -> None:
        self.conn.sudo("systemctl stop modelgate")

    def restart(self) -> None:
        self.conn.sudo("systemctl restart modelgate")

    def running(self) -> bool:
        return self.conn.run("systemctl is-active --quiet modelgate", warn=True).ok


class Process:
    """Hosts without systemd: gunicorn daemonised as the service user, with a pid file."""

    def __init__(self, conn: Connection, host: HostSettings) -> None:
        self.conn = conn
        self.host = host
        self.pidfile = f"{host.root}/shared/run/gunicorn.pid"

    def start(self) -> None:
        current = f"{self.host.root}/current"
        # PWD=current keeps the symlinked path, so the process runs the release it points to.
        as_service_user(
            self.conn,
            f"env PWD={current} {current}/.venv/bin/gunicorn -c gunicorn.conf.py wsgi:app "
            f"--daemon --pid {self.pidfile} "
            f"--error-logfile {self.host.root}/shared/log/gunicorn.log",
            user=self.host.user,
            env_file=self.host.env_file,
            cwd=current,
            warn=True,  # a release that cannot start is for the readiness gate to judge
        )

    def stop(self) -> None:
        """SIGTERM: gunicorn stops accepting, finishes what it holds, then exits (else KILL)."""
        pid = self._pid()
        if pid is None:
            return
        as_root(
            self.conn,
            f"kill -TERM {pid}; for _ in $(seq 600); do kill -0 {pid} 2>/dev/null || exit 0; "
            f"sleep 0.1; done; kill -KILL {pid}",
            warn=True,
        )

    def restart(self) -> None:
        self.stop()
        self.start()

    def running(self) -> bool:
        pid = self._pid()
        return pid is not None and as_root(self.conn, f"kill -0 {pid}", warn=True, hide=True).ok

    def _pid(self) -> int | None:
        found = as_root(self.conn, f"cat {self.pidfile}", warn=True, hide=True)
        return int(found.stdout.strip()) if found.ok and found.stdout.strip() else None


SERVICES = {"systemd": Systemd, "process": Process}


def service(conn: Connection, host: HostSettings) -> Systemd | Process:
    return SERVICES[host.service](conn, host)


# --- the steps ------------------------------------------------------------------------


def releases(conn: Connection, host: HostSettings) -> list[str]:
    listed = conn.run(f"ls -1 {host.root}/releases", warn=True, hide=True)
    return sorted(line for line in listed.stdout.split() if line) if listed.ok else []


def current_release(conn: Connection, host: HostSettings) -> str | None:
    found = conn.run(f"readlink {host.root}/current", warn=True, hide=True)
    return os.path.basename(found.stdout.strip()) if found.ok and found.stdout.strip() else None


def switch(conn: Connection, host: HostSettings, release: str) -> None:
    """Point `current` at `release` in one rename: no moment without a `current`."""
    conn.run(
        f"ln -sfn {host.root}/releases/{release} {host.root}/current.next && "
        f"mv -T {host.root}/current.next {host.root}/current"
    )


def ready(conn: Connection, host: HostSettings) -> tuple[bool, str]:
    """Wait for the host's /readyz; (True, "") or (False, why)."""
    deadline = time.monotonic() + host.ready_timeout_s
    answer = ""
    while time.monotonic() < deadline:
        probe = conn.run(
            f"curl -s -o /dev/null -w '%{{http_code}}' --max-time 2 http://{host.bind}/readyz",
            warn=True,
            hide=True,
        )
        answer = probe.stdout.strip()
        if answer == "200":
            _RUN["ready_at"] = time.monotonic()
            return True, ""
        time.sleep(0.5)
    log = as_root(conn, f"tail -n 20 {host.root}/shared/log/gunicorn.log", warn=True, hide=True)
    waited = f"{host.ready_timeout_s:.0f} s"
    return False, f"/readyz answered {answer or 'nothing'} for {waited}\n{log.stdout}"


def settle(host: HostSettings) -> None:
    """Before a host goes down, give nginx time to take back the host that came up last.

    nginx skips a host for FAIL_TIMEOUT_S after a refused connection, and it may have
    tried the previous host just before that one became ready. Stopping this host
    sooner would leave nginx skipping both, and calls would get 502.
    """
    came_up = _RUN.get("ready_at")
    if came_up is not None:
        time.sleep(max(0.0, came_up + host.settle_s - time.monotonic()))


def lay_out(conn: Connection, host: HostSettings) -> None:
    """Give the deploy root its owners: code to the deploy user, DATA_DIRS to the service user.

    The service user answers the internet: could it write the releases or the venv, one bug
    in it could leave code behind that every later start would run. Idempotent, and it takes
    back what earlier versions of this file gave the service user (the whole root).
    """
    root, deployer, user = host.root, conn.user, host.user
    data = " ".join(f"{root}/shared/{name}" for name in DATA_DIRS)
    as_root(
        conn,
        f"group=$(id -gn {deployer}) && "
        f"install -d -o {deployer} -g $group -m 755 {root} {root}/releases {root}/shared && "
        f"chown -R {deployer}:$group {root}/releases && chmod -R go-w {root}/releases && "
        f"if [ -e {root}/shared/venv ]; then chown -R {deployer}:$group {root}/shared/venv; fi && "
        f"install -d -o {user} -g {user} -m 750 {data}",
    )


def upload(conn: Connection, host: HostSettings, release: str) -> None:
    """Ship the release and its venv as the deploy user, who alone may write them."""
    target = f"{host.root}/releases/{release}"
    conn.run(f"mkdir -p {target}")
    ssh_settings = load_settings().get("ssh", {})
    ssh = ["ssh", "-p", str(conn.port), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"]
    ssh += ["-o", f"UserKnownHostsFile={known_hosts_file(ssh_settings)}"]
    ssh += ["-o", "GlobalKnownHostsFile=/dev/null"]  # the same keys as the fabfile's own checks
    if ssh_settings.get("key"):
        ssh += ["-i", os.path.expanduser(ssh_settings["key"])]
    # The deploy user's files, whoever owns them here: everyone may read them, no one else write.
    command = ["rsync", "-a", "--no-owner", "--no-group", "--chmod=go-w,go+rX", "--delete"]
    command += ["-e", shlex.join(ssh)]
    command += [f"--exclude={pattern}" for pattern in EXCLUDES]
    source = load_settings().get("source", str(PROJECT))  # a checkout; this one by default
    command += [f"{source}/", f"{conn.user}@{conn.host}:{target}/"]
    subprocess.run(command, check=True)  # noqa: S603 - our own arguments
    conn.run(f"ln -sfn {host.root}/shared/instance {target}/instance")
    if host.install_requirements:
        venv = f"{host.root}/shared/venv"
        conn.run(f"test -x {venv}/bin/python || {host.python} -m venv {venv}")
        conn.run(f"{venv}/bin/pip install --quiet torch==2.13.0")
        conn.run(f"{venv}/bin/pip install --quiet -r {target}/requirements.txt")
        conn.run(f"ln -sfn {venv} {target}/.venv")
    else:  # the given interpreter's environment already has what requirements.txt lists
        conn.run(f"ln -sfn {os.path.dirname(os.path.dirname(host.python))} {target}/.venv")


def migrate(conn: Connection, host: HostSettings, release: str) -> None:
    """`flask db upgrade` as the service user, with the env file's values passed by root."""
    print(f"migrating the database from {conn.host}")
    as_service_user(
        conn,
        # No metrics from a one-off command (its folder may not exist before the first start).
        "env -u PROMETHEUS_MULTIPROC_DIR FLASK_APP=api:create_app .venv/bin/flask db upgrade",
        user=host.user,
        env_file=host.env_file,
        cwd=f"{host.root}/releases/{release}",
    )


def prune(conn: Connection, host: HostSettings) -> None:
    """Keep the newest `keep` releases, and always the current one."""
    current = current_release(conn, host)
    for old in releases(conn, host)[: -host.keep]:
        if old != current:
            conn.run(f"rm -rf {host.root}/releases/{old}")


# --- tasks ------------------------------------------------------------------------------


def _hosts(c: Connection) -> list[str]:
    hosts = c.config.get("hosts") or os.environ.get("MODELGATE_HOSTS", "").split(",")
    return [host for host in hosts if host]


def build_web() -> None:
    if load_settings().get("build_web", True):
        subprocess.run(["npm", "run", "build"], cwd=PROJECT / "web", check=True)  # noqa: S607


@task
def deploy(c):
    """Build, ship and start a new release on every host, one host at a time."""
    conn = connect(c)
    settings = load_settings()
    host = host_settings(settings, conn.host)
    state = _RUN
    if "release" not in state:  # the first host of this run
        build_web()
        state["release"] = datetime.now(UTC).strftime("%Y%m%d%H%M%S%f")
        state["switched"] = []
    release = state["release"]
    previous = current_release(conn, host)
    lay_out(conn, host)
    upload(conn, host, release)
    if not state.get("migrated"):
        migrate(conn, host, release)
        state["migrated"] = True
    settle(host)
    switch(conn, host, release)
    manager = service(conn, host)
    manager.restart() if manager.running() else manager.start()
    state["switched"].append((conn.host, previous))
    healthy, why = ready(conn, host)
    if not healthy:
        for name, before in reversed(state["switched"]):
            back = open_connection(name, settings.get("ssh", {}), conn.user, conn.port)
            back_host = host_settings(settings, name)
            if before is None:
                service(back, back_host).stop()
                continue
            settle(back_host)
            switch(back, back_host, before)
            service(back, back_host).restart()
            ready(back, back_host)
            print(f"{name}: back on release {before}")
        raise Exit(f"{conn.host}: release {release} did not become ready; rolled back.\n{why}", 1)
    prune(conn, host)
    print(f"{conn.host}: release {release} is live")


@task
def rollback(c):
    """Go back to the release before the current one on this host."""
    conn = connect(c)
    host = host_settings(load_settings(), conn.host)
    current = current_release(conn, host)
    older = [name for name in releases(conn, host) if current is None or name < current]
    if not older:
        raise Exit(f"{conn.host}: no release before {current} to go back to", 1)
    settle(host)
    switch(conn, host, older[-1])
    service(conn, host).restart()
    healthy, why = ready(conn, host)
    if not healthy:
        raise Exit(f"{conn.host}: release {older[-1]} did not become ready\n{why}", 1)
    print(f"{conn.host}: rolled back from {current} to {older[-1]}")


@task
def status(c):
    """The current release, whether the service runs, and what /readyz says."""
    conn = connect(c)
    host = host_settings(load_settings(), conn.host)
    probe = conn.run(f"curl -s --max-time 2 http://{host.bind}/readyz", warn=True, hide=True)
    print(
        f"{conn.host}: release {current_release(conn, host)}, "
        f"{'running' if service(conn, host).running() else 'stopped'}, "
        f"readyz {probe.stdout.strip() or 'no answer'}"
    )


@task
def logs(c, lines=50):
    """The last lines of the app's log on this host."""
    conn = connect(c)
    host = host_settings(load_settings(), conn.host)
    as_root(conn, f"tail -n {int(lines)} {host.root}/shared/log/app.log", warn=True)


@task
def provision(c):
    """Prepare a fresh Debian/Ubuntu host: packages, user, folders, unit, nginx site."""
    conn = connect(c)
    settings = load_settings()
    host = host_settings(settings, conn.host)
    packages = settings.get("provision", {}).get("packages", [])
    if packages:
        conn.sudo("apt-get update -q")
        conn.sudo(f"apt-get install -y -q {' '.join(map(shlex.quote, packages))}")
    as_root(
        conn,
        f"id -u {host.user} >/dev/null 2>&1 || useradd --system --user-group "
        f"--home-dir {host.root} --no-create-home --shell /usr/sbin/nologin {host.user}",
    )
    lay_out(conn, host)
    # Root-only, and made so again if it was loosened: only root reads it, for the service.
    env, folder = host.env_file, os.path.dirname(host.env_file)
    as_root(
        conn,
        f"if [ ! -d {folder} ]; then install -d -m 700 {folder}; fi && touch {env} && "
        f"chown root:root {env} && chmod 600 {env}",
    )
    if host.service == "systemd":
        staged = f"{host.root}/modelgate.service"
        conn.put(_text(service_unit(host.root, host.user, env_file=env)), staged)
        as_root(conn, f"chown root:root {staged} && mv {staged} /etc/systemd/system/")
        as_root(conn, "systemctl daemon-reload && systemctl enable modelgate")
    print(f"{conn.host}: provisioned; put the settings in {env} (see docs/deploy.md)")


def _text(value: str) -> io.StringIO:
    return io.StringIO(value)

"""Ship modelgate to one or more app hosts: `fab -r deploy -H host1,host2 deploy`.

Settings come from a TOML file (`MODELGATE_DEPLOY`, default `deploy/deploy.toml`; see
`deploy.example.toml`, which lists every key): the SSH user and key, each host's deploy
root, the Python environment, the service manager, how many releases to keep, where nginx
runs. A deploy root holds `releases/<UTC timestamp>/`, `current` (a symlink to one of them),
and `shared/` (the venv, and the only folders the service user may write: `instance/`,
`log/`, `run/`). The SSH user (the deploy user) owns the code, the venv and the releases;
the service user that runs them can read them but not write them. The env file stays
root-only: gunicorn and the migrations get its values from root, through systemd or sudo.

Every connection checks the host's SSH key against the settings' `known_hosts` and
refuses a host whose key is missing or different (deploy/remote.py).

`deploy` builds the web app here once, then for every host: rsync the release, install its
requirements, run the migrations as the service user (once per deploy, on the first host),
take the host out of nginx's rotation and wait for the calls nginx sent it (the drain),
switch `current` atomically (`ln -s` to a temporary name, then `mv -T`), restart through
the service manager, wait for `/readyz`, mark the release as gone live, and put the host
back. Hosts go one at a time, so the others answer meanwhile. If a host does not become
ready (it gives up as soon as gunicorn exits), every host this deploy switched goes back to
its previous release and the failed release is deleted; the deploy says why, with the end
of gunicorn's log.

Only releases marked as gone live (`releases/<name>/.went-live`, written once the release
passed the readiness gate) are a rollback's target or count among the `keep` that pruning
keeps. nginx's rotation is its upstreams file (`snippets/upstreams.conf`, rendered by
deploy/nginx_site.py): a host marked `down` there, then `nginx -t` and a reload.
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

from deploy.nginx_site import FAIL_TIMEOUT_S, set_down, upstream_states  # noqa: E402
from deploy.remote import (  # noqa: E402
    SERVICES,
    Process,
    Systemd,
    as_root,
    as_service_user,
    known_hosts_file,
    open_connection,
)
from deploy.templates import service_unit  # noqa: E402

_RUN: dict = {}  # one `fab -H a,b deploy` run: its release name, what it switched, if migrated
EXCLUDES = (
    ".git", ".venv", "node_modules", "web/node_modules", "instance", ".env", "*.db",
    "*.sqlite", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache",
    ".schemathesis", ".hypothesis", "docs/screenshots", "web/e2e/output",
)  # fmt: skip
DATA_DIRS = ("instance", "log", "run")  # under shared/: all that the service user may write
WENT_LIVE = ".went-live"  # in a release that passed the readiness gate on this host
LOG_LINES = 20  # of gunicorn's log, when a release does not become ready


@dataclass(frozen=True)
class HostSettings:
    """What one host needs: where its deploy root is and how its app is reached and run."""

    root: str
    user: str  # the service user: runs gunicorn and the migrations, writes only DATA_DIRS
    bind: str  # gunicorn's address on that host, for the health gate
    upstream: str  # the host as nginx's upstreams name it (default: bind)
    python: str  # the interpreter whose venv the release links to
    env_file: str  # the settings gunicorn and the migrations read (root-only in production)
    service: str  # "systemd" or "process"
    install_requirements: bool
    keep: int
    ready_timeout_s: float
    settle_s: float  # without [nginx]: between one host ready and the next going down


@dataclass(frozen=True)
class NginxSettings:
    """Where nginx runs, and how a host is taken out of its rotation and put back."""

    host: str  # reached over SSH like the app hosts, its key checked the same way
    upstreams: str  # the installed snippets/upstreams.conf
    reload: str  # run as root: test the configuration, then reload it
    drain_timeout_s: float  # at most this long for the calls a drained host still holds


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
        upstream=merged.get("upstream", merged["bind"]),
        python=merged.get("python", "/usr/bin/python3"),
        env_file=merged.get("env_file", "/etc/modelgate/env"),
        service=merged.get("service", "systemd"),
        install_requirements=bool(merged.get("install_requirements", True)),
        keep=int(merged.get("keep", 5)),
        ready_timeout_s=float(merged.get("ready_timeout_s", 120)),
        settle_s=float(merged.get("settle_s", FAIL_TIMEOUT_S + 1)),
    )


def nginx_settings(settings: dict) -> NginxSettings | None:
    """The `[nginx]` section; None where there is none (hosts are then not drained)."""
    nginx = settings.get("nginx")
    if not nginx:
        return None
    return NginxSettings(
        host=nginx["host"],
        upstreams=nginx.get("upstreams", "/etc/nginx/snippets/modelgate/upstreams.conf"),
        reload=nginx.get("reload", "nginx -t -q && systemctl reload nginx"),
        drain_timeout_s=float(nginx.get("drain_timeout_s", 30)),
    )


def connect(c: Connection) -> Connection:
    """The task's host, connected with the settings' SSH options once its key is checked."""
    return open_connection(c.host, load_settings().get("ssh", {}), c.user, c.port)


def service(conn: Connection, host: HostSettings) -> Systemd | Process:
    return SERVICES[host.service](conn, host.root, host.user, host.env_file)


# --- releases ---------------------------------------------------------------------------


def releases(conn: Connection, host: HostSettings) -> list[str]:
    listed = conn.run(f"ls -1 {host.root}/releases", warn=True, hide=True)
    return sorted(line for line in listed.stdout.split() if line) if listed.ok else []


def live_releases(conn: Connection, host: HostSettings) -> list[str]:
    """The releases that went live on this host and passed the readiness gate, oldest first."""
    found = conn.run(
        f"find {host.root}/releases -mindepth 2 -maxdepth 2 -name {WENT_LIVE}",
        warn=True,
        hide=True,
    )
    return sorted(os.path.basename(os.path.dirname(path)) for path in found.stdout.split())


def current_release(conn: Connection, host: HostSettings) -> str | None:
    found = conn.run(f"readlink {host.root}/current", warn=True, hide=True)
    return os.path.basename(found.stdout.strip()) if found.ok and found.stdout.strip() else None


def switch(conn: Connection, host: HostSettings, release: str) -> None:
    """Point `current` at `release` in one rename: no moment without a `current`."""
    conn.run(
        f"ln -sfn {host.root}/releases/{release} {host.root}/current.next && "
        f"mv -T {host.root}/current.next {host.root}/current"
    )


def mark_live(conn: Connection, host: HostSettings, release: str) -> None:
    conn.run(f"touch {host.root}/releases/{release}/{WENT_LIVE}")


def adopt_serving(conn: Connection, host: HostSettings, release: str | None) -> None:
    """Mark the release that serves now as gone live, where it has no mark yet.

    Releases deployed before the marks existed have none; the one answering /readyz has
    passed the gate in all but name, and is what a rollback must be able to return to.
    """
    if release and release not in live_releases(conn, host) and probe(conn, host) == "200":
        mark_live(conn, host, release)


def forget(conn: Connection, host: HostSettings, release: str) -> None:
    """Delete a release that failed its gate, unless `current` still points to it."""
    if current_release(conn, host) != release:
        conn.run(f"rm -rf {host.root}/releases/{release}")


def prune(conn: Connection, host: HostSettings) -> None:
    """Keep the newest `keep` releases that went live, and the current one; delete the rest.

    A release that never passed its gate (it failed, or its deploy was cut short) is never
    kept in place of one that did.
    """
    kept = set(live_releases(conn, host)[-host.keep :]) | {current_release(conn, host)}
    for name in releases(conn, host):
        if name not in kept:
            conn.run(f"rm -rf {host.root}/releases/{name}")


# --- readiness ----------------------------------------------------------------------------


def probe(conn: Connection, host: HostSettings) -> str:
    """The status of the host's /readyz, asked on the host ("" when nothing answers)."""
    answer = conn.run(
        f"curl -s -o /dev/null -w '%{{http_code}}' --max-time 2 http://{host.bind}/readyz",
        warn=True,
        hide=True,
    )
    status = answer.stdout.strip()
    return "" if status == "000" else status  # curl's 000: no answer


def ready(conn: Connection, host: HostSettings, manager: Systemd | Process) -> tuple[bool, str]:
    """Wait for the host's /readyz to answer 200: (True, "") or (False, why).

    A worker accepts calls only once it has loaded the models (gunicorn.conf.py's
    post_worker_init runs first), so a 200 means the host can answer them. The wait ends
    as soon as gunicorn has exited: a release that cannot boot is not given the whole
    `ready_timeout_s`.
    """
    started = time.monotonic()
    while True:
        answer = probe(conn, host)
        waited = time.monotonic() - started
        if answer == "200":
            print(f"{conn.host}: /readyz answered 200 after {waited:.0f} s")
            return True, ""
        if manager.gone():
            why = f"gunicorn exited after {waited:.0f} s"
            break
        if waited >= host.ready_timeout_s:
            why = f"/readyz answered {answer or 'nothing'} for {host.ready_timeout_s:.0f} s"
            break
        time.sleep(0.5)
    return False, f"{why}; the end of its log:\n{manager.log_tail(LOG_LINES)}"


# --- nginx's rotation ---------------------------------------------------------------------


def set_rotation(conn: Connection, host: HostSettings, nginx: NginxSettings, live: bool) -> bool:
    """Put the host in nginx's rotation or take it out; False where it must stay in.

    The last host in the rotation stays in: taken out, nginx would answer every call 502.
    """
    proxy = open_connection(nginx.host, load_settings().get("ssh", {}), conn.user, conn.port)
    text = as_root(proxy, f"cat {nginx.upstreams}", hide=True).stdout
    states = upstream_states(text)
    if host.upstream not in states:
        raise Exit(f"{nginx.host}:{nginx.upstreams} lists no server {host.upstream}", 1)
    if states[host.upstream] == live:
        return True
    if not live and not any(up for name, up in states.items() if name != host.upstream):
        print(f"{conn.host}: the only host in nginx's rotation; it stays in while it restarts")
        return False
    staged = proxy.run("mktemp", hide=True).stdout.strip()
    proxy.put(io.StringIO(set_down(text, host.upstream, down=not live)), staged)
    path, before = nginx.upstreams, f"{nginx.upstreams}.before"
    done = as_root(
        proxy,
        f"cp {path} {before} && cat {staged} > {path} && rm -f {staged} && "
        f"if ({nginx.reload}); then rm -f {before}; else cat {before} > {path}; exit 1; fi",
        warn=True,
    )
    if not done.ok:
        raise Exit(f"{nginx.host}: nginx did not take the new upstreams ({nginx.reload})", 1)
    return True


def take_out(conn: Connection, host: HostSettings) -> None:
    """Stop nginx sending calls to this host, then wait for those it sent (the drain).

    Without `[nginx]` in the settings, nothing tells nginx: the host goes down as it is, a
    settle time after the last one came back.
    """
    nginx = nginx_settings(load_settings())
    if nginx is None:
        if not _RUN.get("warned"):
            print("no [nginx] in the deploy settings: hosts restart without a drain")
            _RUN["warned"] = True
        settle(host)
        return
    started = time.monotonic()
    if set_rotation(conn, host, nginx, live=False):
        wait_idle(conn, host, nginx.drain_timeout_s)
        took = time.monotonic() - started
        print(f"{conn.host}: out of nginx's rotation, drained in {took:.1f} s")


def wait_idle(conn: Connection, host: HostSettings, timeout_s: float) -> None:
    """Wait until no connection to gunicorn is open: nginx's calls to it have ended.

    nginx's workers of the old configuration finish their calls and close their idle
    connections to the host within a moment of the reload; new ones never open any.
    """
    port = host.bind.rsplit(":", 1)[1]
    deadline = time.monotonic() + timeout_s
    time.sleep(1)  # the reload reaches nginx's old workers
    while time.monotonic() < deadline:
        counted = conn.run(
            f"ss -Htn state established '( sport = :{port} )' | wc -l", warn=True, hide=True
        )
        if counted.stdout.strip() == "0":
            return
        time.sleep(0.5)
    print(f"{conn.host}: connections still open after {timeout_s:.0f} s; stopping it anyway")


def put_back(conn: Connection, host: HostSettings) -> None:
    """Let nginx send calls to this host again (it answers /readyz)."""
    nginx = nginx_settings(load_settings())
    if nginx is None:
        _RUN["ready_at"] = time.monotonic()
        return
    set_rotation(conn, host, nginx, live=True)


def settle(host: HostSettings) -> None:
    """Without a drain: before a host goes down, let nginx take back the one that came up last.

    nginx skips a host for FAIL_TIMEOUT_S after a refused connection, and it may have
    tried the previous host just before that one became ready. Stopping this host
    sooner would leave nginx skipping both, and calls would get 502.
    """
    came_up = _RUN.get("ready_at")
    if came_up is not None:
        time.sleep(max(0.0, came_up + host.settle_s - time.monotonic()))


# --- shipping ---------------------------------------------------------------------------


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


# --- tasks ------------------------------------------------------------------------------


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
    manager = service(conn, host)
    lay_out(conn, host)
    upload(conn, host, release)
    if not state.get("migrated"):
        migrate(conn, host, release)
        state["migrated"] = True
    adopt_serving(conn, host, previous)
    take_out(conn, host)
    switch(conn, host, release)
    manager.restart()
    state["switched"].append((conn.host, previous))
    healthy, why = ready(conn, host, manager)
    if not healthy:
        go_back(conn, release, state["switched"])
        raise Exit(f"{conn.host}: release {release} did not become ready; rolled back.\n{why}", 1)
    mark_live(conn, host, release)
    put_back(conn, host)
    prune(conn, host)
    print(f"{conn.host}: release {release} is live")


def go_back(conn: Connection, release: str, switched: list[tuple[str, str | None]]) -> None:
    """Return every host this deploy switched to the release it had, last switched first.

    The failed host is out of nginx's rotation already; each other one is drained again
    before it restarts. A host that had no release before is stopped and stays out.
    """
    settings = load_settings()
    for name, before in reversed(switched):
        back = open_connection(name, settings.get("ssh", {}), conn.user, conn.port)
        back_host = host_settings(settings, name)
        manager = service(back, back_host)
        take_out(back, back_host)
        if before is None:
            manager.stop()
            print(f"{name}: stopped; it had no release before {release}")
            continue
        switch(back, back_host, before)
        manager.restart()
        healthy, why = ready(back, back_host, manager)
        forget(back, back_host, release)
        if not healthy:
            print(f"{name}: release {before} did not become ready either; left out of nginx\n{why}")
            continue
        put_back(back, back_host)
        print(f"{name}: back on release {before}")


@task
def rollback(c):
    """Go back to the newest release before the current one that went live on this host."""
    conn = connect(c)
    host = host_settings(load_settings(), conn.host)
    manager = service(conn, host)
    current = current_release(conn, host)
    older = [name for name in live_releases(conn, host) if current is None or name < current]
    if not older:
        raise Exit(f"{conn.host}: no release that went live before {current} to go back to", 1)
    target = older[-1]
    take_out(conn, host)
    switch(conn, host, target)
    manager.restart()
    healthy, why = ready(conn, host, manager)
    if healthy:
        put_back(conn, host)
        print(f"{conn.host}: rolled back from {current} to {target}")
        return
    if current is not None:  # the host goes on serving what it served
        switch(conn, host, current)
        manager.restart()
        if ready(conn, host, manager)[0]:
            put_back(conn, host)
    raise Exit(f"{conn.host}: release {target} did not become ready; still on {current}\n{why}", 1)


@task
def status(c):
    """The current release, whether the service runs, what /readyz says, nginx's rotation."""
    conn = connect(c)
    settings = load_settings()
    host = host_settings(settings, conn.host)
    answer = conn.run(f"curl -s --max-time 2 http://{host.bind}/readyz", warn=True, hide=True)
    line = (
        f"{conn.host}: release {current_release(conn, host)}, "
        f"{'running' if service(conn, host).running() else 'stopped'}, "
        f"readyz {answer.stdout.strip() or 'no answer'}"
    )
    nginx = nginx_settings(settings)
    if nginx is not None:
        proxy = open_connection(nginx.host, settings.get("ssh", {}), conn.user, conn.port)
        states = upstream_states(as_root(proxy, f"cat {nginx.upstreams}", hide=True).stdout)
        line += ", " + {True: "in nginx's rotation", False: "out of nginx's rotation"}.get(
            states.get(host.upstream), "not in nginx's upstreams"
        )
    print(line)


@task
def drain(c):
    """Take this host out of nginx's rotation and wait for its calls (`fab undrain` undoes)."""
    conn = connect(c)
    take_out(conn, host_settings(load_settings(), conn.host))


@task
def undrain(c):
    """Put this host back into nginx's rotation, if its /readyz answers."""
    conn = connect(c)
    host = host_settings(load_settings(), conn.host)
    if probe(conn, host) != "200":
        raise Exit(f"{conn.host}: /readyz does not answer 200; it stays out", 1)
    put_back(conn, host)


@task
def logs(c, lines=50):
    """The last lines of the app's log: the LOG_FILE the host's env file names.

    Without LOG_FILE the app logs to its output: the journal under systemd, gunicorn's
    log under the `process` manager.
    """
    conn = connect(c)
    host = host_settings(load_settings(), conn.host)
    count = int(lines)
    shown = as_root(
        conn,
        f'. {host.env_file} && if [ -z "$LOG_FILE" ]; then exit 3; fi && '
        f'tail -n {count} "$LOG_FILE"',
        warn=True,
    )
    if shown.return_code == 3:
        print(service(conn, host).log_tail(count), end="")


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

"""A host's releases: shipping one, switching `current`, the marks of those that went live.

A deploy root holds `releases/<UTC timestamp>/`, `current` (a symlink to one of them) and
`shared/` (the venv, and the only folders the service user may write). Only releases
marked as gone live (`releases/<name>/.went-live`) are a rollback's target or count among
the `keep` that pruning keeps.
"""

from __future__ import annotations

import os
import shlex
import subprocess

from fabric import Connection

from deploy.remote import as_root, as_service_user, known_hosts_file
from deploy.rotation import probe
from deploy.settings import PROJECT, HostSettings, load_settings

EXCLUDES = (
    ".git", ".venv", ".venv-*", "node_modules", "web/node_modules", "instance", ".env", "*.db",
    "*.sqlite", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache",
    ".schemathesis", ".hypothesis", "docs/screenshots", "web/e2e/output",
)  # fmt: skip
DATA_DIRS = ("instance", "log", "run")  # under shared/: all that the service user may write
WENT_LIVE = ".went-live"  # in a release that passed the readiness gate on this host


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


def build_web() -> None:
    if load_settings().get("build_web", True):
        subprocess.run(["npm", "run", "build"], cwd=PROJECT / "web", check=True)  # noqa: S607

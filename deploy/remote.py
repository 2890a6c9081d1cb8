"""Connections to the hosts, commands there as root or as the service user, and the
service managers that start and stop gunicorn on an app host.

A connection is made only to a host whose SSH key is the one the settings' `known_hosts`
lists for it: paramiko's RejectPolicy, where Fabric on its own accepts whatever key it is
offered. The connection opens at once, so a host that fails the check gets no command,
not even a login. This module does not decide what to run or when; the fabfile does.

Service managers: `Systemd` (production: the unit in `deploy/systemd/`) and `Process`
(gunicorn started and stopped by its pid file, for hosts without systemd, such as the test
hosts). Both answer to `start`, `stop`, `restart`, `running`, `gone` (it exited since it was
started: a release that cannot boot) and `log_tail` (the end of gunicorn's own output).
"""

from __future__ import annotations

import os
import shlex

from fabric import Connection
from invoke.exceptions import Exit
from invoke.runners import Result
from paramiko import BadHostKeyException, PKey, RejectPolicy, SSHClient, SSHException

HOW_TO_ADD = "docs/deploy.md, 'Host keys', says how to check a key and add it"


class UnknownHost(SSHException):
    """The host is not in known_hosts; the key it offered is kept for the message."""

    def __init__(self, name: str, key: PKey) -> None:
        super().__init__(f"{name} is not in known_hosts")
        self.name = name
        self.key = key


class RejectUnknownHost(RejectPolicy):
    """RejectPolicy that says which key was refused, so the operator can compare it."""

    def missing_host_key(self, client: SSHClient, hostname: str, key: PKey) -> None:
        raise UnknownHost(hostname, key)


def known_hosts_file(ssh: dict) -> str:
    """The settings' known_hosts file: required, since it is what tells our hosts apart."""
    if not ssh.get("known_hosts"):
        raise Exit(f"[ssh] known_hosts is not set in the deploy settings ({HOW_TO_ADD}).")
    path = os.path.expanduser(ssh["known_hosts"])
    if not os.path.isfile(path):
        raise Exit(f"[ssh] known_hosts names {path}, which does not exist ({HOW_TO_ADD}).")
    return path


def describe(key: PKey) -> str:
    return f"{key.get_name()} {key.fingerprint}"


def open_connection(host: str, ssh: dict, user: str | None, port: int) -> Connection:
    """An open connection to `host` with the settings' SSH options, its host key checked."""
    known_hosts = known_hosts_file(ssh)
    options = {
        "key_filename": os.path.expanduser(ssh["key"]) if ssh.get("key") else None,
        "look_for_keys": False,
        "allow_agent": False,
    }
    conn = Connection(
        host, user=ssh.get("user", user), port=ssh.get("port", port), connect_kwargs=options
    )
    conn.client.load_host_keys(known_hosts)
    conn.client.set_missing_host_key_policy(RejectUnknownHost())
    try:
        conn.open()
    except UnknownHost as error:
        raise Exit(
            f"{host}: refusing to connect: {known_hosts} lists no key for {error.name}, and "
            f"the host offers {describe(error.key)}. Add it only if that fingerprint is the "
            f"host's own ({HOW_TO_ADD})."
        ) from None
    except BadHostKeyException as error:
        raise Exit(
            f"{host}: refusing to connect: the host offers {describe(error.key)}, but "
            f"{known_hosts} lists {describe(error.expected_key)} for it. If the host was "
            f"reinstalled, check the new key on its console and replace the line; if not, "
            f"someone may be between you and the host ({HOW_TO_ADD})."
        ) from None
    return conn


def as_root(conn: Connection, script: str, **kwargs: object) -> Result:
    """Run a shell script as root (Fabric's `sudo` would prefix its first command only)."""
    return conn.sudo(f"sh -c {shlex.quote(script)}", **kwargs)


def as_service_user(
    conn: Connection, command: str, *, user: str, env_file: str, cwd: str, **kwargs: object
) -> Result:
    """Run `command` in `cwd` as `user`, with the settings of the root-only `env_file`.

    Root reads the file, as systemd reads the unit's EnvironmentFile, and hands the values
    down in the environment, never on a command line: the file stays 0600 root:root.
    """
    script = (
        f"cd {shlex.quote(cwd)} && set -a && . {shlex.quote(env_file)} && set +a && "
        f"exec runuser -u {shlex.quote(user)} -- {command}"
    )
    return as_root(conn, script, **kwargs)


class Systemd:
    """Production: the modelgate unit (graceful stop within TimeoutStopSec, restart on failure)."""

    def __init__(self, conn: Connection, root: str, user: str, env_file: str) -> None:
        self.conn = conn
        self.restarts = ""

    def start(self) -> None:
        self._begin("start")

    def stop(self) -> None:
        self.conn.sudo("systemctl stop modelgate")

    def restart(self) -> None:
        self._begin("restart")

    def running(self) -> bool:
        return self.conn.run("systemctl is-active --quiet modelgate", warn=True).ok

    def gone(self) -> bool:
        """It failed, or systemd restarted it after it exited (Restart=on-failure)."""
        state = self._show()
        return (
            state.get("ActiveState") == "failed"
            or state.get("SubState") == "auto-restart"
            or state.get("NRestarts") != self.restarts
        )

    def log_tail(self, lines: int) -> str:
        journal = f"journalctl -u modelgate -n {lines} --no-pager -o cat"
        return as_root(self.conn, journal, warn=True, hide=True).stdout

    def _begin(self, verb: str) -> None:
        # A unit that fails to start is for the readiness gate to judge, with its log.
        self.conn.sudo(f"systemctl {verb} modelgate", warn=True)
        self.restarts = self._show().get("NRestarts", "")

    def _show(self) -> dict[str, str]:
        shown = self.conn.run(
            "systemctl show modelgate -p ActiveState -p SubState -p NRestarts", warn=True, hide=True
        )
        return dict(line.split("=", 1) for line in shown.stdout.splitlines() if "=" in line)


class Process:
    """Hosts without systemd: gunicorn daemonised as the service user, with a pid file."""

    def __init__(self, conn: Connection, root: str, user: str, env_file: str) -> None:
        self.conn = conn
        self.root = root
        self.user = user
        self.env_file = env_file
        self.pidfile = f"{root}/shared/run/gunicorn.pid"
        self.log = f"{root}/shared/log/gunicorn.log"
        # This root's gunicorn processes, found by the pid file their arguments name: not by
        # the file's pid, which a process that died unseen may have left to another since.
        # "[-]-pid" matches "--pid" but not itself, in the shell that runs pgrep.
        self.pattern = shlex.quote(f"[-]-pid {self.pidfile}( |$)")

    def start(self) -> None:
        current = f"{self.root}/current"
        # PWD=current keeps the symlinked path, so the process runs the release it points to.
        as_service_user(
            self.conn,
            f"env PWD={current} {current}/.venv/bin/gunicorn -c gunicorn.conf.py wsgi:app "
            f"--daemon --pid {self.pidfile} --error-logfile {self.log}",
            user=self.user,
            env_file=self.env_file,
            cwd=current,
            warn=True,  # a release that cannot start is for the readiness gate to judge
        )

    def stop(self) -> None:
        """SIGTERM: gunicorn stops accepting, finishes what it holds, then exits (else KILL)."""
        find = f"pgrep -f -- {self.pattern}"
        as_root(
            self.conn,
            f"pid=$(pgrep -o -f -- {self.pattern}) || exit 0; kill -TERM $pid; "
            f"for _ in $(seq 600); do {find} >/dev/null || exit 0; sleep 0.1; done; "
            f"kill -KILL $pid",
            warn=True,
        )

    def restart(self) -> None:
        self.stop()
        self.start()

    def running(self) -> bool:
        return self.conn.run(f"pgrep -f -- {self.pattern}", warn=True, hide=True).ok

    def gone(self) -> bool:
        return not self.running()

    def log_tail(self, lines: int) -> str:
        return as_root(self.conn, f"tail -n {lines} {self.log}", warn=True, hide=True).stdout


SERVICES: dict[str, type[Systemd] | type[Process]] = {"systemd": Systemd, "process": Process}

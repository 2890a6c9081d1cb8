"""Connections to the app hosts, and commands there as root or as the service user.

A connection is made only to a host whose SSH key is the one the settings' `known_hosts`
lists for it: paramiko's RejectPolicy, where Fabric on its own accepts whatever key it is
offered. The connection opens at once, so a host that fails the check gets no command,
not even a login. This module does not decide what to run; the fabfile does.
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

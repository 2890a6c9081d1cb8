"""The deploy settings: one TOML file (`MODELGATE_DEPLOY`, default `deploy/deploy.toml`).

`deploy.example.toml` lists every key; docs/deploy.md's table says what each does.
"""

from __future__ import annotations

import functools
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from fabric import Connection
from invoke.exceptions import Exit

from deploy.nginx_site import FAIL_TIMEOUT_S
from deploy.remote import SERVICES, Process, Systemd, open_connection

PROJECT = Path(__file__).resolve().parent.parent


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
    role: str = "api"  # "model": reached by the API hosts only, never in nginx's rotation

    @property
    def in_rotation(self) -> bool:
        """Whether nginx sends this host calls (an API host) or the API hosts do (a model host)."""
        return self.role == "api"


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


ROLES = ("api", "model")


def host_settings(settings: dict, host: str) -> HostSettings:
    merged = {**settings.get("defaults", {}), **settings.get("hosts", {}).get(host, {})}
    role = merged.get("role", "api")
    if role not in ROLES:
        raise Exit(f'{host}: role = "{role}" in the deploy settings; it is "api" or "model"')
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
        role=role,
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

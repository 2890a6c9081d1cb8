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
requirements, run the migrations as the service user (once per deploy, on the first API
host, and on each model host, whose database is its own), take an API host out of nginx's
rotation and wait for the calls nginx sent it (the drain),
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

A host with `role = "model"` (docs/deploy.md, "Several machines") serves handler models to
the API hosts, which call it as an Open Inference Protocol upstream: it is deployed the
same way but never drained through nginx, and `service-token` mints the API token the
API hosts call it with.
"""

from __future__ import annotations

import io
import os
import re
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path

from fabric import Connection, task
from invoke.exceptions import Exit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `fab -r deploy`: only deploy/

from deploy.nginx_site import upstream_states
from deploy.releases import (
    adopt_serving,
    build_web,
    current_release,
    forget,
    lay_out,
    live_releases,
    mark_live,
    migrate,
    prune,
    switch,
    upload,
)
from deploy.remote import as_root, as_service_user, open_connection
from deploy.rotation import _RUN, probe, put_back, ready, take_out
from deploy.settings import (
    HostSettings,
    connect,
    host_settings,
    load_settings,
    nginx_settings,
    service,
)
from deploy.templates import service_unit

TOKEN_LINE = re.compile(r"mg_[0-9A-Za-z]+")


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
    if not host.in_rotation:  # a model host: a database of its own, migrated with it
        migrate(conn, host, release)
    elif not state.get("migrated"):  # the API hosts share one: once, on the first of them
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
    if not host.in_rotation:
        line += ", a model host (in no nginx rotation)"
    elif nginx is not None:
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
    take_out(conn, _api_host(conn))


@task
def undrain(c):
    """Put this host back into nginx's rotation, if its /readyz answers."""
    conn = connect(c)
    host = _api_host(conn)
    if probe(conn, host) != "200":
        raise Exit(f"{conn.host}: /readyz does not answer 200; it stays out", 1)
    put_back(conn, host)


def _api_host(conn: Connection) -> HostSettings:
    host = host_settings(load_settings(), conn.host)
    if not host.in_rotation:
        raise Exit(f"{conn.host} is a model host: it is in no nginx rotation", 1)
    return host


@task
def service_token(c, name="api", scopes="predict"):
    """Mint an API token of the service account NAME on this host, printed once.

    For the API hosts' env files, where `key_env` of their `upstream:oip:` entries names
    it (docs/deploy.md, "Several machines"). Run in the current release as the service
    user with the env file's values, like the migrations; the account is created at the
    first call and reused after, each call a new token (revoke old ones by id).
    """
    conn = connect(c)
    host = host_settings(load_settings(), conn.host)
    made = as_service_user(
        conn,
        "env -u PROMETHEUS_MULTIPROC_DIR FLASK_APP=api:create_app .venv/bin/flask users "
        f"create-service {shlex.quote(name)} --scopes {shlex.quote(scopes)}",
        user=host.user,
        env_file=host.env_file,
        cwd=f"{host.root}/current",
        hide=True,
        warn=True,
    )
    # Only the token's line: without LOG_FILE the app's own log lines share stdout.
    token = [line for line in made.stdout.splitlines() if TOKEN_LINE.fullmatch(line)]
    if not made.ok or len(token) != 1:
        raise Exit(f"{conn.host}: no token: {made.stderr.strip()[-2000:]}", 1)
    said = [line for line in made.stderr.splitlines() if line.startswith("Service account")]
    print(f"{conn.host}: {''.join(said[-1:])}\n{token[0]}")


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

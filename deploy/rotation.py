"""When a host takes calls: its readiness gate, and nginx's rotation (the drain).

nginx's rotation is its upstreams file (`snippets/upstreams.conf`, rendered by
deploy/nginx_site.py): a host marked `down` there, then `nginx -t` and a reload.
"""

from __future__ import annotations

import io
import json
import time

from fabric import Connection
from invoke.exceptions import Exit

from deploy.nginx_site import set_down, upstream_states
from deploy.remote import Process, Systemd, as_root, open_connection
from deploy.settings import HostSettings, NginxSettings, load_settings, nginx_settings

_RUN: dict = {}  # one `fab -H a,b deploy` run: its release name, what it switched, if migrated
LOG_LINES = 20  # of gunicorn's log, when a release does not become ready
MODELS_KEY = "models"  # /readyz's handler models, by id


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


def handler_states(conn: Connection, host: HostSettings) -> tuple[dict, dict]:
    """On a model host: (the handler models still loading, those that failed), by /readyz."""
    if host.in_rotation:
        return {}, {}
    answer = conn.run(f"curl -s --max-time 5 http://{host.bind}/readyz", warn=True, hide=True)
    try:
        states = json.loads(answer.stdout).get(MODELS_KEY, {})
    except ValueError:
        return {"/readyz": "no JSON"}, {}
    failed = {name: state for name, state in states.items() if state.startswith("failed")}
    loading = {
        name: state for name, state in states.items() if state != "ready" and name not in failed
    }
    return loading, failed


def ready(conn: Connection, host: HostSettings, manager: Systemd | Process) -> tuple[bool, str]:
    """Wait for the host's /readyz to answer 200: (True, "") or (False, why).

    A worker accepts calls only once it has loaded the models (gunicorn.conf.py's
    post_worker_init runs first), so a 200 means the host can answer them. The wait ends
    as soon as gunicorn has exited: a release that cannot boot is not given the whole
    `ready_timeout_s`. A model host, there for its handler models, is ready once every
    one of them is: /readyz answers 200 while they load, and a model that fails to load
    fails the release.
    """
    started = time.monotonic()
    while True:
        answer = probe(conn, host)
        waited = time.monotonic() - started
        loading, failed = ({}, {}) if answer != "200" else handler_states(conn, host)
        if failed:
            why = f"its models failed to load: {failed}"
            break
        if answer == "200" and not loading:
            print(f"{conn.host}: /readyz answered 200 after {waited:.0f} s")
            return True, ""
        if manager.gone():
            why = f"gunicorn exited after {waited:.0f} s"
            break
        if waited >= host.ready_timeout_s:
            still = f" with models {loading}" if loading else ""
            why = f"/readyz answered {answer or 'nothing'}{still} for {host.ready_timeout_s:.0f} s"
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
    settle time after the last one came back. A model host is in no rotation: the API
    hosts' breaker and retries cover its restart (docs/deploy.md, "Several machines").
    """
    if not host.in_rotation:
        return
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
    """Let nginx send calls to this host again (it answers /readyz); not a model host."""
    if not host.in_rotation:
        return
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

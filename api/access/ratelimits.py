"""Concurrency caps and the limits around authentication (the API budget is `api.access.budget`).

- `inference_slot`: at most `INFERENCE_PER_USER` inference calls of one user run
  at once (streams at most `STREAMS_PER_USER` of those), across workers via Redis,
  per process without it. Past the cap: 429 with `Retry-After`, at once. In Redis a
  slot is a lease its worker renews while the call runs, so a killed worker's slots
  are free again within `LEASE_S`.
- `check_auth_failures` / `record_auth_failure`: invalid credentials are counted
  per client address; past `AUTH_FAILURE_LIMIT` the address gets 429 before any
  token or database lookup.
- `allow`: a plain "may this happen again?" counter for work done off the request
  path (mail past its limit is simply not sent).

Limits are checked after authentication, so the key is never empty.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
import uuid
from collections import Counter as Tally
from collections.abc import Iterator

import redis
from flask import Flask, current_app, g
from flask_limiter.util import get_remote_address
from limits import parse

from api.edge.errors import TooManyRequests
from api.extensions import limiter, redis_client

log = logging.getLogger(__name__)

# A sorted set per user and kind: member = a call's lease id, score = its deadline (Redis
# time, ms). A lease its worker stopped renewing, because the worker died, lapses within
# LEASE_S and its slot is free again; a live call's lease is renewed every RENEW_EVERY_S
# (docs/decisions.md: why not the call's own deadline).
SLOT_KEY = "mg:slots:{}:{}"
LEASE_S = 10.0
RENEW_EVERY_S = 2.5  # a renewal or two may fail (Redis busy) before a live lease lapses
_local_slots: Tally[tuple[str, int]] = Tally()
_local_lock = threading.Lock()

# KEYS[1] the set; ARGV: the cap, the lease id, its life in ms. 1 admitted, 0 refused.
_TAKE_LEASE = """
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], ms + tonumber(ARGV[3]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""
# KEYS[1] the set; ARGV: the lease id, its life in ms. XX: a lease already released
# (or lapsed and reclaimed) is not brought back.
_RENEW_LEASE = """
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
if redis.call('ZADD', KEYS[1], 'XX', 'CH', ms + tonumber(ARGV[2]), ARGV[1]) == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


class _Heartbeat:
    """Renews the leases this process holds, from one thread that dies with the process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[tuple[str, str], tuple[Flask, redis.Redis]] = {}
        self._pid = 0  # the process whose thread runs (a forked child starts its own)

    def hold(self, app: Flask, client: redis.Redis, key: str, lease: str) -> None:
        with self._lock:
            if self._pid != os.getpid():
                self._pid, self._held = os.getpid(), {}
                threading.Thread(target=self._run, name="slot-leases", daemon=True).start()
            self._held[(key, lease)] = (app, client)

    def drop(self, key: str, lease: str) -> None:
        with self._lock:
            self._held.pop((key, lease), None)

    def _run(self) -> None:
        while True:
            time.sleep(RENEW_EVERY_S)
            with self._lock:
                held = list(self._held.items())
            by_owner: dict[tuple[Flask, redis.Redis], list[tuple[str, str]]] = {}
            for key_and_lease, owner in held:
                by_owner.setdefault(owner, []).append(key_and_lease)
            for (app, client), leases in by_owner.items():
                try:
                    self._renew(app, client, leases)
                except Exception:  # the thread must outlive a bug, or every lease lapses
                    log.exception("renewing inference slot leases failed")

    @staticmethod
    def _renew(app: Flask, client: redis.Redis, leases: list[tuple[str, str]]) -> None:
        renew = client.register_script(_RENEW_LEASE)
        life_ms = int(LEASE_S * 1000)
        try:
            with client.pipeline(transaction=False) as pipe:
                for key, lease in leases:
                    renew(keys=[key], args=[lease, life_ms], client=pipe)
                pipe.execute()
        except redis.RedisError as error:
            with app.app_context():
                redis_client.report_failure("inference slots", error)


_heartbeat = _Heartbeat()


def user_key() -> str:
    """Rate-limit key of the signed-in user (the IP before authentication)."""
    principal = g.get("principal")
    if principal is None:
        return "ip:" + (get_remote_address() or "unknown")
    return f"user:{principal.user_id}"


def allow(limit: str, namespace: str, identifier: str) -> bool:
    """Count one event against `limit` for `identifier`; False once the limit is spent.

    Uses Flask-Limiter's storage (Redis, or its in-memory fallback); a storage
    error allows the event (the per-IP limits still stand in front).
    """
    prefix = current_app.config.get("RATELIMIT_KEY_PREFIX", "")
    try:
        return limiter.limiter.hit(parse(limit), prefix, namespace, identifier)
    except Exception as error:
        redis_client.report_failure(f"{namespace} limit", error)
        return True


def client_ip() -> str:
    """The caller's address (after ProxyFix), the key of the per-address limits."""
    return get_remote_address() or "unknown"


def _blocked_until() -> dict[str, float]:
    return current_app.extensions.setdefault("auth_failures_blocked", {})


def check_auth_failures() -> None:
    """429 at once for an address that spent its budget of failed authentications."""
    blocked = _blocked_until()
    until = blocked.get(client_ip())
    if until is None:
        return
    remaining = until - time.monotonic()
    if remaining <= 0:
        blocked.pop(client_ip(), None)
        return
    raise TooManyRequests(
        "Too many invalid credentials from this address; retry later.",
        code="too_many_auth_failures",
        headers={"Retry-After": str(math.ceil(remaining))},
    )


def record_auth_failure() -> None:
    """Count an invalid credential for this address; block it (in this process) once spent.

    Other workers learn of the block at their next failure from the address.
    """
    item = parse(current_app.config["AUTH_FAILURE_LIMIT"])
    keys = (current_app.config.get("RATELIMIT_KEY_PREFIX", ""), "authfail", client_ip())
    try:
        limiter.limiter.hit(item, *keys)
        stats = limiter.limiter.get_window_stats(item, *keys)
    except Exception as error:
        redis_client.report_failure("auth failure limit", error)
        return
    if stats.remaining > 0:
        return
    _blocked_until()[client_ip()] = time.monotonic() + max(1.0, stats.reset_time - time.time())
    log.warning("authentication failures over the limit", extra={"client.ip": client_ip()})


def _enter(kind: str, user_id: int, limit: int) -> tuple[bool, str | None]:
    """Take one of the user's `limit` slots of `kind`: (admitted, its lease id in Redis).

    Without Redis (or when it fails) the slot is counted in this process: lease id None.
    """
    client = redis_client.client
    if client is not None:
        key, lease = SLOT_KEY.format(kind, user_id), uuid.uuid4().hex
        try:
            if not client.register_script(_TAKE_LEASE)(
                keys=[key], args=[limit, lease, int(LEASE_S * 1000)]
            ):
                return False, None
            app = current_app._get_current_object()  # type: ignore[attr-defined]
            _heartbeat.hold(app, client, key, lease)
            return True, lease
        except redis.RedisError as error:
            redis_client.report_failure("inference slots", error)
    with _local_lock:
        if _local_slots[(kind, user_id)] >= limit:
            return False, None
        _local_slots[(kind, user_id)] += 1
        return True, None


def _leave(kind: str, user_id: int, lease: str | None) -> None:
    client = redis_client.client
    if lease is not None and client is not None:
        key = SLOT_KEY.format(kind, user_id)
        _heartbeat.drop(key, lease)
        with contextlib.suppress(redis.RedisError):  # else the lease lapses in LEASE_S
            client.zrem(key, lease)
        return
    with _local_lock:
        _local_slots[(kind, user_id)] -= 1


@contextlib.contextmanager
def _slot(kind: str, user_id: int, limit: int, message: str, code: str) -> Iterator[None]:
    admitted, lease = _enter(kind, user_id, limit)
    if not admitted:
        raise TooManyRequests(message, code=code, headers={"Retry-After": "1"})
    try:
        yield
    finally:
        _leave(kind, user_id, lease)


@contextlib.contextmanager
def inference_slot(user_id: int, *, stream: bool = False) -> Iterator[None]:
    """Hold one of the user's concurrent inference calls (and stream slots) while it runs."""
    config = current_app.config
    with contextlib.ExitStack() as held:
        limit = config["INFERENCE_PER_USER"]
        held.enter_context(
            _slot(
                "all",
                user_id,
                limit,
                f"At most {limit} inference calls at a time per account.",
                "too_many_concurrent_requests",
            )
        )
        if stream:
            limit = config["STREAMS_PER_USER"]
            held.enter_context(
                _slot(
                    "stream",
                    user_id,
                    limit,
                    f"At most {limit} streams at a time.",
                    "too_many_streams",
                )
            )
        yield

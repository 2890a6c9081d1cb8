"""Concurrency caps and the limits around authentication (the API budget is `api.budget`).

- `inference_slot`: at most `INFERENCE_PER_USER` inference calls of one user run
  at once (streams at most `STREAMS_PER_USER` of those), across workers via Redis,
  per process without it. Past the cap: 429 with `Retry-After`, at once.
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
import threading
import time
from collections import Counter as Tally
from collections.abc import Iterator

import redis
from flask import current_app, g
from flask_limiter.util import get_remote_address
from limits import parse

from api.errors import TooManyRequests
from api.extensions import limiter, redis_client

log = logging.getLogger(__name__)

SLOT_KEY = "mg:inflight:{}:{}"
_local_slots: Tally[tuple[str, int]] = Tally()
_local_lock = threading.Lock()


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


def _enter(kind: str, user_id: int) -> tuple[int, bool]:
    """Count one more call of `kind` in flight for the user: (count, counted in Redis)."""
    client = redis_client.client
    if client is not None:
        key = SLOT_KEY.format(kind, user_id)
        try:
            # One round trip; the TTL means a crashed worker cannot hold a slot forever.
            with client.pipeline() as pipe:
                pipe.incr(key)
                pipe.expire(key, 3600)
                count, _ = pipe.execute()
            return int(count), True
        except redis.RedisError as error:
            redis_client.report_failure("inference slots", error)
    with _local_lock:
        _local_slots[(kind, user_id)] += 1
        return _local_slots[(kind, user_id)], False


def _leave(kind: str, user_id: int, in_redis: bool) -> None:
    client = redis_client.client
    if in_redis and client is not None:
        with contextlib.suppress(redis.RedisError):
            client.decr(SLOT_KEY.format(kind, user_id))
        return
    with _local_lock:
        _local_slots[(kind, user_id)] -= 1


@contextlib.contextmanager
def _slot(kind: str, user_id: int, limit: int, message: str, code: str) -> Iterator[None]:
    count, in_redis = _enter(kind, user_id)
    try:
        if count > limit:
            raise TooManyRequests(message, code=code, headers={"Retry-After": "1"})
        yield
    finally:
        _leave(kind, user_id, in_redis)


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

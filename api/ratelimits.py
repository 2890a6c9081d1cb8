"""API rate limits: one shared budget per API token (or per user for session calls).

The limit is the user's own (set by an admin) or `RATE_LIMIT_DEFAULT`. Limits are
checked after authentication, so the key is never empty: `token:<id>`,
`user:<id>`, or `ip:<address>` for a caller we could not identify. Streaming
generations also take a slot from a per-user concurrency cap.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter as Tally
from collections.abc import Iterator

import redis
from flask import current_app, g
from flask_limiter.util import get_remote_address

from api.errors import TooManyRequests
from api.extensions import limiter, redis_client

STREAM_KEY = "mg:streams:{}"
_local_streams: Tally[int] = Tally()
_local_lock = threading.Lock()


def principal_key() -> str:
    principal = g.get("principal")
    if principal is None:
        return "ip:" + (get_remote_address() or "unknown")
    if principal.token_id is not None:
        return f"token:{principal.token_id}"
    return f"user:{principal.user.id}"


def principal_limit() -> str:
    principal = g.get("principal")
    if principal is not None and principal.user.rate_limit:
        return principal.user.rate_limit
    return current_app.config["RATE_LIMIT_DEFAULT"]


api_rate_limit = limiter.shared_limit(principal_limit, scope="api", key_func=principal_key)


@contextlib.contextmanager
def stream_slot(user_id: int, limit: int) -> Iterator[None]:
    """Hold one of a user's `limit` concurrent streams (Redis across workers, else per process)."""
    key = STREAM_KEY.format(user_id)
    client = redis_client.client
    use_redis = client is not None
    if client is not None:
        try:
            # One round trip; the TTL means a crashed worker cannot hold a slot forever.
            with client.pipeline() as pipe:
                pipe.incr(key)
                pipe.expire(key, 3600)
                count, _ = pipe.execute()
        except redis.RedisError as error:
            redis_client.report_failure("stream limit", error)
            use_redis = False
    if not use_redis:
        with _local_lock:
            _local_streams[user_id] += 1
            count = _local_streams[user_id]
    try:
        if count > limit:
            raise TooManyRequests(
                f"At most {limit} streams at a time.",
                code="too_many_streams",
                headers={"Retry-After": "1"},
            )
        yield
    finally:
        if use_redis and client is not None:
            with contextlib.suppress(redis.RedisError):
                client.decr(key)
        else:
            with _local_lock:
                _local_streams[user_id] -= 1

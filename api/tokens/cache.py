"""The worker's cache of resolved API tokens, kept honest by one Redis counter.

Resolving a token costs a database read of the token and its user. Each worker
keeps what it resolved (token id, scopes, expiry, limits; the user's id, role,
limit and whether it is active) for up to `TTL_S`, tagged with the *auth epoch*
it saw: a Redis counter that every change to a token or a user's access bumps
(revoke, disable, enable, role or limit change, password reset). The same round
trip that checks a call's rate limits returns the epoch (`api.access.ratelimits`), so a
worker that sees a newer one drops its whole cache and reads the database again:
a revoke or disable bites on the very next call in every worker.

Without Redis nothing is cached: every call reads the database, as before.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime

import redis
from flask import current_app

from api.extensions import redis_client

EPOCH_KEY = "mg:auth:epoch"
TTL_S = 60.0
MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class CachedPrincipal:
    """What authorising an API-token call needs, without the database."""

    token_id: int
    user_id: int
    scopes: frozenset[str]
    expires_at: datetime | None
    token_rate_limit: str | None
    email: str
    role: str
    user_rate_limit: str | None
    active: bool


class PrincipalCache:
    """Token hash -> CachedPrincipal, valid while the auth epoch stays the same."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[CachedPrincipal, float]] = {}
        self.epoch: str | None = None  # the epoch every entry was read under

    def get(self, token_hash: str) -> CachedPrincipal | None:
        entry = self._entries.get(token_hash)
        if entry is None or time.monotonic() - entry[1] > TTL_S:
            return None
        return entry[0]

    def put(self, token_hash: str, principal: CachedPrincipal, epoch: str | None) -> None:
        """Remember `principal`, read from the database under `epoch` (None: do not cache)."""
        if epoch is None:
            return
        with self._lock:
            if epoch != self.epoch:
                self._entries.clear()
                self.epoch = epoch
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[token_hash] = (principal, time.monotonic())

    def observe(self, epoch: str | None) -> bool:
        """Note the epoch Redis reported (None: unreachable); True if the cache was dropped."""
        if epoch == self.epoch and epoch is not None:
            return False
        with self._lock:
            dropped = bool(self._entries)
            self._entries.clear()
            self.epoch = epoch
        return dropped


def principal_cache() -> PrincipalCache:
    return current_app.extensions.setdefault("principal_cache", PrincipalCache())


def read_epoch() -> str | None:
    """The current auth epoch, or None when Redis cannot say."""
    client = redis_client.client
    if client is None:
        return None
    try:
        return str(client.get(EPOCH_KEY) or "0")
    except redis.RedisError as error:
        redis_client.report_failure("auth epoch", error)
        return None


def bump_auth_epoch() -> None:
    """Tell every worker that some token or user changed (call after the commit)."""
    principal_cache().observe(None)
    client = redis_client.client
    if client is None:
        return
    try:
        client.incr(EPOCH_KEY)
    except redis.RedisError as error:
        # Workers that cannot reach Redis cache nothing, so none can act on stale data.
        redis_client.report_failure("auth epoch", error)

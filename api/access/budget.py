"""The API budget: every authenticated call's rate limits in one Redis round trip.

One budget per user across all their tokens and sessions (`user:<id>`): the
user's own limit (set by an admin) or `RATE_LIMIT_DEFAULT`; a token created with
a lower limit of its own is also held to that (`token:<id>`). Windows are fixed,
as Flask-Limiter's default strategy: a counter per limit that expires with its
window, incremented atomically, so limits are exact across workers.

`check_budget` runs one Lua script that (a) reads the auth epoch
(`api.tokens.cache`) and stops there if it differs from what the caller's cached
principal was read under, else (b) counts the call against each limit and
returns the counts and windows. Authentication calls it for views marked with
`api_rate_limit`; that decorator (inside `@metered`, so a 429 is counted) then
refuses the call or adds the `X-RateLimit-*` headers, and the same numbers under
OpenAI's names (`x-ratelimit-*-requests`) for clients that read those. Only calls
are budgeted, not tokens, so OpenAI's `x-ratelimit-*-tokens` are not sent.

Why not Flask-Limiter here: it makes a round trip per limit and per header, and
the epoch must ride on the same trip. It still guards the account endpoints.
Without Redis (or while it is down) the same limits are kept per process.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import redis
from flask import current_app, g, request
from limits import RateLimitItem, parse_many

from api.edge.contract import declare
from api.edge.errors import TooManyRequests
from api.extensions import redis_client
from api.observability.metrics import RATE_LIMIT_REJECTIONS
from api.tokens.cache import EPOCH_KEY

F = TypeVar("F", bound=Callable[..., Any])
LIMITED = "_modelgate_rate_limited"

SCRIPT = """
local epoch = redis.call('GET', KEYS[1]) or '0'
if ARGV[1] ~= '' and epoch ~= ARGV[1] then return {epoch} end
local out = {epoch}
for i = 2, #KEYS do
  local count = redis.call('INCR', KEYS[i])
  if count == 1 then redis.call('EXPIRE', KEYS[i], ARGV[i]) end
  out[#out + 1] = count
  out[#out + 1] = redis.call('TTL', KEYS[i])
end
return out
"""


@dataclass(frozen=True)
class Window:
    item: RateLimitItem
    count: int
    reset_in: int  # seconds until this window ends

    @property
    def remaining(self) -> int:
        return max(0, self.item.amount - self.count)


@dataclass(frozen=True)
class Budget:
    """The outcome of counting one call: every window it was counted in."""

    windows: tuple[Window, ...]

    @property
    def allowed(self) -> bool:
        return all(window.count <= window.item.amount for window in self.windows)

    def headers(self) -> dict[str, str]:
        tightest = min(self.windows, key=lambda window: window.remaining)
        headers = {
            "X-RateLimit-Limit": str(tightest.item.amount),
            "X-RateLimit-Remaining": str(tightest.remaining),
            "X-RateLimit-Reset": str(int(time.time()) + tightest.reset_in),
            "x-ratelimit-limit-requests": str(tightest.item.amount),
            "x-ratelimit-remaining-requests": str(tightest.remaining),
            "x-ratelimit-reset-requests": go_duration(tightest.reset_in),
        }
        spent = [w for w in self.windows if w.count > w.item.amount]
        if spent:
            headers["Retry-After"] = str(max(1, max(w.reset_in for w in spent)))
        return headers


def go_duration(seconds: int) -> str:
    """`seconds` as OpenAI writes a reset (Go's duration format): `1s`, `6m0s`, `1h2m3s`."""
    hours, rest = divmod(max(0, seconds), 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{seconds}s"
    return f"{minutes}m{seconds}s" if minutes else f"{seconds}s"


class EpochChanged(Exception):
    """The auth epoch moved: the caller's cached principal may be stale."""

    def __init__(self, epoch: str) -> None:
        super().__init__(epoch)
        self.epoch = epoch


def limits_for(user_id: int, user_limit: str | None, token_id: int | None, token_limit: str | None):
    """(key, item) of every window a call of this user (and token) counts in."""
    prefix = current_app.config.get("RATELIMIT_KEY_PREFIX", "mg")
    pairs = [
        (item.key_for(prefix, "api", f"user:{user_id}"), item)
        for item in _parse(user_limit or current_app.config["RATE_LIMIT_DEFAULT"])
    ]
    if token_id is not None and token_limit:
        pairs += [
            (item.key_for(prefix, "api", f"token:{token_id}"), item) for item in _parse(token_limit)
        ]
    return pairs


@functools.lru_cache(maxsize=256)
def _parse(limit: str) -> tuple[RateLimitItem, ...]:
    return tuple(parse_many(limit))


def check_budget(
    windows: list[tuple[str, RateLimitItem]], known_epoch: str | None
) -> tuple[Budget, str | None]:
    """Count one call in each window; returns the budget and the auth epoch (None: no Redis).

    Raises EpochChanged (nothing counted) when `known_epoch` is not the current one.
    """
    client = redis_client.client
    if client is not None:
        script = current_app.extensions.get("budget_script")
        if script is None:
            script = current_app.extensions["budget_script"] = client.register_script(SCRIPT)
        try:
            result = script(
                keys=[EPOCH_KEY, *(key for key, _ in windows)],
                args=[known_epoch or "", *(item.get_expiry() for _, item in windows)],
            )
            _degraded(False)
        except redis.RedisError as error:
            redis_client.report_failure("rate limits", error)
            _degraded(True)
        else:
            epoch = str(result[0])
            if len(result) == 1:
                raise EpochChanged(epoch)
            counts = [int(value) for value in result[1:]]
            return (
                Budget(
                    tuple(
                        Window(item, counts[2 * i], max(0, counts[2 * i + 1]))
                        for i, (_, item) in enumerate(windows)
                    )
                ),
                epoch,
            )
    return _count_in_memory(windows), None


_memory_lock = threading.Lock()


def _count_in_memory(windows: list[tuple[str, RateLimitItem]]) -> Budget:
    """The same fixed windows, kept by this process alone (no Redis, or Redis down)."""
    memory: dict[str, tuple[int, float]] = current_app.extensions.setdefault("budget_memory", {})
    now = time.monotonic()
    counted = []
    with _memory_lock:
        for key, item in windows:
            count, ends = memory.get(key, (0, 0.0))
            if ends <= now:
                count, ends = 0, now + item.get_expiry()
            memory[key] = (count + 1, ends)
            counted.append(Window(item, count + 1, int(ends - now + 0.999)))
        if len(memory) > 100_000:
            memory.clear()
    return Budget(tuple(counted))


def _degraded(state: bool) -> None:
    current_app.extensions["budget_degraded"] = state


def api_rate_limit(view: F) -> F:
    """Refuse the call when the budget counted at authentication is spent; else add headers."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        budget: Budget | None = g.get("budget")
        if budget is None:  # `authenticate` counts the call; it must wrap this decorator
            raise RuntimeError("api_rate_limit must sit inside @authenticate")
        headers = budget.headers()
        if not budget.allowed:
            rule = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
            RATE_LIMIT_REJECTIONS.labels(rule).inc()
            raise TooManyRequests(
                "Rate limit exceeded; retry later.", code="rate_limited", headers=headers
            )
        response = current_app.make_response(view(*args, **kwargs))
        response.headers.update(headers)
        return response

    setattr(wrapper, LIMITED, True)
    return declare(wrapper, rate_limited=True)  # type: ignore[return-value]

"""An OpenAI-compatible upstream: POSTs to one of its replicas, retried only where safe.

One urllib3 `PoolManager` per model and worker process keeps the connections to every
replica alive and pooled (thread-safe; it retries nothing and follows no redirect, and
reads no proxy or `.netrc` setting). urllib3 directly rather than `requests`: the
session's per-call preparation (cookies, hooks, settings merged) was half the
upstream call's CPU in the gateway (docs/benchmarks.md, issue 27).
A request goes to the next replica in round-robin order whose breaker admits it, with
the time left (at most `timeout_s`) as its timeout, and moves to the next replica only
when the request cannot have run there: the connection was refused or timed out
before anything was sent, or the replica answered 502/503 (embeddings are idempotent,
and those say it did not do the work). A connection that breaks after the request
went out is a 502 to the caller, a read past the deadline a 504; neither is retried.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import time
from typing import Any

import urllib3
from urllib3.exceptions import ConnectTimeoutError, HTTPError, NewConnectionError, ReadTimeoutError

from api.edge.errors import APIError, ServiceUnavailable, Unprocessable
from api.observability.tracing import current_trace_id
from api.runtime.errors import DeadlineExceeded
from api.runtime.upstreams.config import UpstreamConfig
from api.runtime.upstreams.replicas import Replica, ReplicaSet

log = logging.getLogger(__name__)
CONNECT_TIMEOUT_S = 2.0
HEALTH_TIMEOUT_S = 2.0
RETRYABLE_STATUS = (502, 503)
_HEX32 = re.compile(r"[0-9a-f]{32}")


class UpstreamUnavailable(ServiceUnavailable):
    """No replica of the upstream could take the request (all refused, or breakers open)."""

    code = "upstream_unavailable"
    message = "The upstream model is not answering; retry shortly."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message, headers={"Retry-After": "1"})


class UpstreamFailed(APIError):
    """The request reached a replica, which failed it or broke the connection mid-way."""

    status, code, message = 502, "upstream_error", "The upstream model failed this request."


def _never_sent(error: HTTPError) -> bool:
    """True when the request cannot have reached the replica (refused, connect timeout)."""
    return isinstance(error, NewConnectionError | ConnectTimeoutError)


def trace_headers() -> dict[str, str]:
    """X-Trace-Id and a W3C traceparent carrying this request's trace id."""
    trace_id = current_trace_id()
    if not trace_id:
        return {}
    trace = (
        trace_id
        if _HEX32.fullmatch(trace_id)
        else hashlib.blake2b(trace_id.encode(), digest_size=16).hexdigest()
    )
    return {"X-Trace-Id": trace_id, "traceparent": f"00-{trace}-{secrets.token_hex(8)}-01"}


class OpenAIUpstream:
    """The replicas of one OpenAI-compatible upstream model, from this worker."""

    def __init__(self, config: UpstreamConfig) -> None:
        self.config = config
        self.replicas = ReplicaSet(
            config.replicas, config.breaker_failures, config.breaker_cooldown_s
        )
        self._key = config.api_key()  # ConfigError when key_env names an unset variable
        self._pool = urllib3.PoolManager(num_pools=len(config.replicas), maxsize=64, retries=False)

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", **trace_headers()}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        return headers

    def post(self, path: str, body: dict[str, Any], *, deadline: float) -> dict[str, Any]:
        """POST `body` to `{replica}{path}`; the JSON answer of the first replica that does it."""
        failure: APIError = UpstreamUnavailable()
        payload = json.dumps(body).encode()
        for replica in self.replicas.order():
            if not replica.admit():
                continue
            timeout = min(self.config.timeout_s, deadline - time.monotonic())
            if timeout <= 0:
                replica.released()
                raise DeadlineExceeded("The upstream model did not answer in time.")
            try:
                response = self._pool.request(
                    "POST",
                    replica.base + path,
                    body=payload,
                    headers=self._headers(),
                    timeout=urllib3.Timeout(connect=min(timeout, CONNECT_TIMEOUT_S), read=timeout),
                )
            except HTTPError as error:
                replica.failed()
                self._log("upstream replica failed", replica, type(error).__name__)
                if _never_sent(error):
                    continue  # it never saw the request: the next replica may take it
                if isinstance(error, ReadTimeoutError):
                    raise DeadlineExceeded("The upstream model did not answer in time.") from None
                raise UpstreamFailed() from None
            if response.status in RETRYABLE_STATUS:
                replica.failed()
                self._log("upstream replica refused", replica, str(response.status))
                failure = UpstreamUnavailable()
                continue
            return self._answer(replica, response)
        raise failure

    def _answer(self, replica: Replica, response: urllib3.BaseHTTPResponse) -> dict[str, Any]:
        status = response.status
        if status >= 500:
            replica.failed()
            self._log("upstream replica failed", replica, str(status))
            raise UpstreamFailed()
        replica.succeeded()  # it answered: whatever it said, the replica is up
        if status >= 400:
            raise Unprocessable(
                f"The upstream model refused this input (HTTP {status}): {_reason(response)}"
            )
        try:
            answer = json.loads(response.data)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise UpstreamFailed("The upstream model answered something other than a JSON object.")
        return answer

    def check(self) -> dict[str, str]:
        """GET {base}/models on every replica: {replica: ok|unreachable|breaker open|...}."""
        states = {}
        for replica in self.replicas.replicas:
            try:
                response = self._pool.request(
                    "GET",
                    replica.base + "/models",
                    headers=self._headers(),
                    timeout=HEALTH_TIMEOUT_S,
                )
                replica.last_check = "ok" if response.status == 200 else "unreachable"
            except HTTPError:
                replica.last_check = "unreachable"
            if replica.last_check != "ok":
                replica.failed()
            states[replica.label] = replica.health()
        return states

    def _log(self, message: str, replica: Replica, error: str) -> None:
        log.warning(
            message,
            extra={
                "inference.model": self.config.model_id,
                "error.type": error,
                "event.reason": f"replica {replica.label}, breaker {replica.state()}",
            },
        )


def _reason(response: urllib3.BaseHTTPResponse) -> str:
    """The upstream's own error message, short (never our key: the upstream never saw ours)."""
    try:
        body = json.loads(response.data)
    except ValueError:
        return response.reason or "no reason given"
    if not isinstance(body, dict):
        return str(body)[:300]
    error = body.get("error")
    message = error.get("message") if isinstance(error, dict) else body.get("detail", error)
    return str(message or response.reason)[:300]

"""An OpenAI-compatible upstream: POSTs to one of its replicas, retried only where safe.

One `requests.Session` per model and worker process keeps the connections to every
replica alive and pooled (urllib3's pool is thread-safe; `requests` retries nothing).
A request goes to the next replica in round-robin order whose breaker admits it, with
the time left (at most `timeout_s`) as its timeout, and moves to the next replica only
when the request cannot have run there: the connection was refused or timed out
before anything was sent, or the replica answered 502/503 (embeddings are idempotent,
and those say it did not do the work). A connection that breaks after the request
went out is a 502 to the caller, a read past the deadline a 504; neither is retried.
Text generation is not idempotent: its calls move on only after a refused or timed-out
connection or a 503 (`open_stream`, `post(retry_status=(503,))`).
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import time
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

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


def _never_sent(error: requests.RequestException) -> bool:
    """True when the request cannot have reached the replica (refused, connect timeout)."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    reason = getattr(error.args[0], "reason", None) if error.args else None
    return isinstance(reason, NewConnectionError | ConnectTimeoutError)


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

    retryable: tuple[int, ...] = RETRYABLE_STATUS
    health_path = "/models"

    def __init__(self, config: UpstreamConfig) -> None:
        self.config = config
        self.replicas = ReplicaSet(
            config.replicas, config.breaker_failures, config.breaker_cooldown_s
        )
        self._key = config.api_key()  # ConfigError when key_env names an unset variable
        session = requests.Session()
        session.trust_env = False  # no proxies or .netrc credentials from the environment
        adapter = HTTPAdapter(pool_connections=len(config.replicas), pool_maxsize=64)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        self._session = session

    def _headers(self) -> dict[str, str]:
        headers = trace_headers()
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        return headers

    def post(
        self,
        path: str,
        body: dict[str, Any],
        *,
        deadline: float,
        retry_status: tuple[int, ...] | None = None,
    ) -> dict[str, Any]:
        """POST `body` to `{replica}{path}`; the JSON answer of the first replica that does it."""
        replica, response = self.send(
            "POST", path, deadline=deadline, json=body, retry_status=retry_status
        )
        return self._answer(replica, response)

    def open_stream(self, path: str, body: dict[str, Any], *, deadline: float) -> requests.Response:
        """POST `body` asking for a stream; the open response of the first replica that
        accepts it (200), to read as it arrives and close. Moves on only where the request
        cannot have run (refused, connect timeout, 503); the read timeout is `timeout_s`
        between two pieces of the stream."""
        replica, response = self.send(
            "POST", path, deadline=deadline, json=body, stream=True, retry_status=(503,)
        )
        try:
            self._check(replica, response)
        except APIError:
            response.close()
            raise
        return response

    def send(
        self,
        method: str,
        path: str,
        *,
        deadline: float,
        headers: dict[str, str] | None = None,
        retry_status: tuple[int, ...] | None = None,
        stream: bool = False,
        **kwargs: Any,
    ) -> tuple[Replica, requests.Response]:
        """`method {replica}{path}` on the first replica that takes it; its raw response.

        Moves on only where the request cannot have run (`_never_sent`, a status in
        `retry_status`, by default `retryable`); the caller judges the answer (and calls
        `succeeded`/`failed`). A stream's read timeout is `timeout_s` between two pieces,
        not for the whole stream."""
        retry = self.retryable if retry_status is None else retry_status
        failure: APIError = UpstreamUnavailable()
        for replica in self.replicas.order():
            if not replica.admit():
                continue
            timeout = min(self.config.timeout_s, deadline - time.monotonic())
            if stream and timeout > 0:
                timeout = self.config.timeout_s
            if timeout <= 0:
                replica.released()
                raise DeadlineExceeded("The upstream model did not answer in time.")
            try:
                response = self._session.request(
                    method,
                    replica.base + path,
                    headers={**self._headers(), **(headers or {})},
                    timeout=(min(timeout, CONNECT_TIMEOUT_S), timeout),
                    stream=stream,
                    **kwargs,
                )
            except requests.RequestException as error:
                replica.failed()
                self._log("upstream replica failed", replica, type(error).__name__)
                if _never_sent(error) or (
                    method == "GET" and not isinstance(error, requests.Timeout)
                ):
                    continue  # it never saw the request (or a GET, safe to repeat)
                if isinstance(error, requests.Timeout):
                    raise DeadlineExceeded("The upstream model did not answer in time.") from None
                raise UpstreamFailed() from None
            if response.status_code in retry:
                response.close()
                replica.failed()
                self._log("upstream replica refused", replica, str(response.status_code))
                failure = UpstreamUnavailable()
                continue
            return replica, response
        raise failure

    def _check(self, replica: Replica, response: requests.Response) -> None:
        """Count the answer for the replica's breaker; raise what a failed one means."""
        status = response.status_code
        if status >= 500:
            replica.failed()
            self._log("upstream replica failed", replica, str(status))
            raise UpstreamFailed()
        replica.succeeded()  # it answered: whatever it said, the replica is up
        if status >= 400:
            raise Unprocessable(
                f"The upstream model refused this input (HTTP {status}): {error_reason(response)}"
            )

    def _answer(self, replica: Replica, response: requests.Response) -> dict[str, Any]:
        """The replica's answer as a JSON object, or the error it means."""
        self._check(replica, response)
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise UpstreamFailed("The upstream model answered something other than a JSON object.")
        return answer

    def check(self) -> dict[str, str]:
        """GET {base}{health_path} on every replica: {replica: ok|unreachable|breaker open|...}."""
        states = {}
        for replica in self.replicas.replicas:
            try:
                response = self._session.get(
                    replica.base + self.health_path,
                    headers=self._headers(),
                    timeout=HEALTH_TIMEOUT_S,
                )
                replica.last_check = "ok" if response.status_code == 200 else "unreachable"
            except requests.RequestException:
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


def error_reason(response: requests.Response) -> str:
    """The upstream's own error message, short (never our key: the upstream never saw ours)."""
    try:
        body = response.json()
    except ValueError:
        return response.reason or "no reason given"
    if not isinstance(body, dict):
        return str(body)[:300]
    error = body.get("error")
    message = error.get("message") if isinstance(error, dict) else body.get("detail", error)
    return str(message or response.reason)[:300]

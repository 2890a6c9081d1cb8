"""An Open Inference Protocol upstream (Triton, KServe, Seldon MLServer, TorchServe).

`id=upstream:oip:BASE[|BASE ...] model=NAME ...` in `MODELS`: modelgate's `/v2/models/{id}`
routes pass through to `{replica}/v2/models/{NAME}/...` (api.oip.upstream). It reuses
the OpenAI upstream's replica loop (round-robin, a breaker per replica, the per-request
timeout, trace headers), with one difference: only a refused connection, a connect
timeout or a 503 moves a request to the next replica (a 502 may come from a proxy in
front of a server that ran it). GETs (metadata, readiness) are safe to repeat on any
connection failure. Bodies go through byte for byte, JSON or binary tensors; only the
answer's `model_name` is rewritten to modelgate's id. Metadata is cached per worker for
`METADATA_TTL_S`. Health: `GET {replica}/v2/models/{NAME}/ready`.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import requests
from flask import current_app

from api.edge.errors import BadRequest, ServiceUnavailable
from api.runtime.specs import ModelInfo
from api.runtime.upstreams.config import UpstreamConfig, parse_upstream
from api.runtime.upstreams.openai import OpenAIUpstream, UpstreamFailed, error_reason
from api.runtime.upstreams.replicas import Replica

HEADER_LENGTH = "Inference-Header-Content-Length"
METADATA_TTL_S = 60.0


@dataclass(frozen=True)
class Answer:
    """An upstream's inference answer, as modelgate sends it on."""

    body: bytes
    header_length: int | None  # the JSON's length when binary outputs follow it


class OIPUpstream(OpenAIUpstream):
    """The replicas of one upstream model served by an Open Inference Protocol server."""

    retryable = (503,)

    def __init__(self, config: UpstreamConfig) -> None:
        super().__init__(config)
        self.id = config.model_id
        self.health_path = f"/v2/models/{config.model}/ready"
        self._metadata: tuple[float, dict[str, Any]] | None = None
        self._metadata_lock = threading.Lock()
        self.info = ModelInfo(self.id, "oip", 0, 0, "upstream", int(time.time()))

    def _path(self, version: str | None, tail: str = "") -> str:
        versioned = f"/versions/{version}" if version else ""
        return f"/v2/models/{self.config.model}{versioned}{tail}"

    def metadata(self, *, deadline: float) -> dict[str, Any]:
        """The upstream's model metadata, named with modelgate's id (cached a while)."""
        with self._metadata_lock:
            cached = self._metadata
        if cached is not None and time.monotonic() - cached[0] < METADATA_TTL_S:
            return cached[1]
        replica, response = self.send("GET", self._path(None), deadline=deadline)
        answer = self._json(replica, response)
        answer["name"] = self.id
        with self._metadata_lock:
            self._metadata = (time.monotonic(), answer)
        return answer

    def ready(self, version: str | None, *, deadline: float) -> bool:
        """Whether a replica says the model is ready (False when none answers)."""
        try:
            replica, response = self.send("GET", self._path(version, "/ready"), deadline=deadline)
        except (ServiceUnavailable, UpstreamFailed):
            return False
        self._settle(replica, response.status_code)
        return response.status_code == 200

    def infer(
        self, body: bytes, header_length: str | None, version: str | None, *, deadline: float
    ) -> Answer:
        """POST the client's body as it came; the answer with modelgate's model name."""
        headers = {"Content-Type": "application/json"}
        if header_length is not None:
            headers = {"Content-Type": "application/octet-stream", HEADER_LENGTH: header_length}
        replica, response = self.send(
            "POST", self._path(version, "/infer"), deadline=deadline, data=body, headers=headers
        )
        self._settle(replica, response.status_code)
        if response.status_code != 200:
            raise _refusal(response)
        return self._rename(response)

    def _settle(self, replica: Replica, status: int) -> None:
        if status >= 500:
            replica.failed()
            self._log("upstream replica failed", replica, str(status))
            raise UpstreamFailed()
        replica.succeeded()  # it answered: whatever it said, the replica is up

    def _json(self, replica: Replica, response: requests.Response) -> dict[str, Any]:
        self._settle(replica, response.status_code)
        if response.status_code != 200:
            raise _refusal(response)
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise UpstreamFailed("The upstream model answered something other than JSON.")
        return answer

    def _rename(self, response: requests.Response) -> Answer:
        raw = response.content
        given = response.headers.get(HEADER_LENGTH)
        split = int(given) if given and given.isdigit() and int(given) <= len(raw) else len(raw)
        try:
            header = json.loads(raw[:split])
        except ValueError:
            raise UpstreamFailed("The upstream model answered something other than JSON.") from None
        if not isinstance(header, dict):
            raise UpstreamFailed("The upstream model's answer is not a JSON object.")
        header["model_name"] = self.id
        encoded = json.dumps(header, separators=(",", ":")).encode()
        if given is None:
            return Answer(encoded, None)
        return Answer(encoded + raw[split:], len(encoded))


def _refusal(response: requests.Response) -> BadRequest:
    """An upstream's 4xx as the protocol's 400 (404 stays 404), with its own message."""
    return BadRequest(
        f"The upstream model refused this request (HTTP {response.status_code}): "
        f"{error_reason(response)}",
        status=404 if response.status_code == 404 else 400,
    )


def oip_upstreams() -> dict[str, OIPUpstream]:
    """The current app's Open Inference Protocol upstreams, by id (built once per worker)."""
    return _built(current_app.config.get("MODELS", ""))


@lru_cache(maxsize=8)
def _built(models: str) -> dict[str, OIPUpstream]:
    from api.runtime.specs import parse_model_specs

    return {
        spec.id: OIPUpstream(parse_upstream(spec.id, spec.upstream))
        for spec in parse_model_specs(models)
        if spec.task == "oip"
    }

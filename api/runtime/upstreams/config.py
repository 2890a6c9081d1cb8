"""Parse an upstream entry of `MODELS`: `upstream:KIND:BASE[|BASE ...] [key=value ...]`.

KIND is `openai` (an OpenAI-compatible server, BASE ending in `/v1`) or `oip` (an Open
Inference Protocol server, BASE its root: requests go to `{BASE}/v2/models/{model}/...`).

The replicas are separated by `|` (`MODELS` itself is comma-separated). Settings:
`model` (the upstream's own model name; default the modelgate id), `timeout_s` (per
request, default 30), `key_env` (the name of an environment variable holding the
upstream's API key, sent as a Bearer token: the key itself never appears in `MODELS`,
logs or answers), `tokenizer` (`all-minilm-l6-v2` or a directory with `tokenizer.json`:
count tokens here when the upstream gives no `usage`, and refuse over-long inputs
before sending), `max_input` (with `tokenizer`: tokens a text may take, default 512),
`breaker_failures` (consecutive failures that open a replica's breaker, default 3),
`breaker_cooldown_s` (how long it stays open before one trial call, default 10),
`task` (`embedding`, the default, or `text-generation`: chat and completions); for
embeddings, `concurrency` (POSTs in flight from one worker per replica, default 1:
further concurrent calls wait and are merged into one POST) and `max_batch` (texts a merged
POST may carry, default 32).
Only parsing here: nothing is contacted and the key is read when the model is built.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit

from api.config import ConfigError

KINDS = ("openai", "oip")
UPSTREAM_TASKS = ("embedding", "text-generation")
_SETTINGS = {
    "task",
    "model",
    "timeout_s",
    "key_env",
    "tokenizer",
    "max_input",
    "breaker_failures",
    "breaker_cooldown_s",
    "concurrency",
    "max_batch",
}


@dataclass(frozen=True)
class UpstreamConfig:
    model_id: str  # modelgate's id
    kind: str
    replicas: tuple[str, ...]  # base URLs, without a trailing slash
    model: str  # the upstream's name for it
    timeout_s: float = 30.0
    key_env: str = ""
    tokenizer: str = ""
    max_input: int = 512
    breaker_failures: int = 3
    breaker_cooldown_s: float = 10.0
    task: str = "embedding"
    concurrency: int = 1  # embedding POSTs in flight per worker and replica; more are merged
    max_batch: int = 32  # texts one merged embedding POST may carry

    def api_key(self) -> str | None:
        """The upstream's key from the environment (None when no `key_env`)."""
        if not self.key_env:
            return None
        key = os.environ.get(self.key_env)
        if not key:
            raise ConfigError(
                f"model {self.model_id!r}: key_env names {self.key_env}, which is not set"
            )
        return key


def replica_label(base: str) -> str:
    """`base` without any user:password part, safe to show in /readyz and metrics."""
    parts = urlsplit(base)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def parse_upstream(model_id: str, target: str) -> UpstreamConfig:
    """`target` is what follows `upstream:`; raise ConfigError naming the model."""
    where = f"MODELS entry {model_id!r}"
    head, *words = target.split()
    kind, _, bases = head.partition(":")
    if kind not in KINDS:
        raise ConfigError(
            f"{where}: the upstream kind must be one of {', '.join(KINDS)}, "
            "written id=upstream:openai:http://host:port/v1[|http://host2:port/v1] "
            "or id=upstream:oip:http://host:port[|http://host2:port]"
        )
    replicas = tuple(base.strip().rstrip("/") for base in bases.split("|") if base.strip())
    if not replicas:
        raise ConfigError(f"{where}: name at least one replica URL after upstream:{kind}:")
    for base in replicas:
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"{where}: {replica_label(base)!r} is not an http(s) URL")
    if len(set(replicas)) != len(replicas):
        raise ConfigError(f"{where}: a replica is named twice")
    settings: dict[str, str] = {}
    for word in words:
        key, sep, value = word.partition("=")
        if key in ("key", "api_key"):
            raise ConfigError(f"{where}: give the upstream's key as key_env=VARIABLE, not inline")
        if not sep or key not in _SETTINGS:
            raise ConfigError(
                f"{where}: unknown setting {key!r}; use {', '.join(sorted(_SETTINGS))}"
            )
        settings[key] = value
    try:
        config = UpstreamConfig(
            model_id=model_id,
            kind=kind,
            replicas=replicas,
            model=settings.get("model", model_id),
            timeout_s=float(settings.get("timeout_s", 30.0)),
            key_env=settings.get("key_env", ""),
            tokenizer=settings.get("tokenizer", ""),
            max_input=int(settings.get("max_input", 512)),
            breaker_failures=int(settings.get("breaker_failures", 3)),
            breaker_cooldown_s=float(settings.get("breaker_cooldown_s", 10.0)),
            task=settings.get("task", "embedding"),
            concurrency=int(settings.get("concurrency", 1)),
            max_batch=int(settings.get("max_batch", 32)),
        )
    except ValueError as error:
        raise ConfigError(f"{where}: {error}") from None
    if config.timeout_s <= 0 or config.breaker_failures < 1 or config.breaker_cooldown_s < 0:
        raise ConfigError(
            f"{where}: timeout_s must be > 0, breaker_failures >= 1, breaker_cooldown_s >= 0"
        )
    if config.concurrency < 1 or config.max_batch < 1:
        raise ConfigError(f"{where}: concurrency and max_batch must be 1 or more")
    if config.task not in UPSTREAM_TASKS:
        raise ConfigError(f"{where}: task must be one of {', '.join(UPSTREAM_TASKS)}")
    named = config.tokenizer not in ("", "all-minilm-l6-v2")
    if named and not os.path.isabs(config.tokenizer):
        raise ConfigError(f"{where}: tokenizer must be all-minilm-l6-v2 or an absolute path")
    return config

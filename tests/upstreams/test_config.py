"""Upstream entries of `MODELS`, the breaker and the token split, without any server."""

from __future__ import annotations

import time

import pytest

from api.config import ConfigError
from api.observability.tracing import bind_trace_id, reset_trace_id
from api.runtime.specs import parse_model_specs
from api.runtime.upstreams.chat import upstream_body
from api.runtime.upstreams.config import parse_upstream, replica_label
from api.runtime.upstreams.embedding import split
from api.runtime.upstreams.openai import trace_headers
from api.runtime.upstreams.replicas import Replica, ReplicaSet

ENTRY = (
    "mini-up=upstream:openai:http://127.0.0.1:7997/v1|http://127.0.0.1:7998/v1 "
    "model=all-MiniLM-L6-v2 timeout_s=10 key_env=INFINITY_KEY"
)


def test_an_upstream_entry_is_an_embedding_model_with_its_replicas(monkeypatch):
    monkeypatch.setenv("INFINITY_KEY", "s3cret")
    (spec,) = parse_model_specs(f"{ENTRY},")
    assert (spec.id, spec.task, spec.path) == ("mini-up", "embedding", "")
    config = parse_upstream(spec.id, spec.upstream)
    assert config.replicas == ("http://127.0.0.1:7997/v1", "http://127.0.0.1:7998/v1")
    assert config.model == "all-MiniLM-L6-v2"
    assert (config.timeout_s, config.key_env) == (10.0, "INFINITY_KEY")
    assert (config.concurrency, config.max_batch) == (1, 32)  # the merging defaults
    merged = parse_upstream("up", "openai:http://h/v1 concurrency=1 max_batch=8")
    assert (merged.concurrency, merged.max_batch) == (1, 8)


def test_a_text_generation_upstream_is_a_text_generation_model():
    entry = "story-up=upstream:openai:http://h/v1 model=storyteller task=text-generation"
    (spec,) = parse_model_specs(entry)
    assert (spec.id, spec.task) == ("story-up", "text-generation")
    assert parse_upstream(spec.id, spec.upstream).model == "storyteller"


def test_a_chat_request_goes_upstream_with_only_what_was_given():
    body = {"model": "story-up", "messages": [{"role": "user", "content": "Hi", "name": None}]}
    body |= {"max_tokens": 9, "temperature": 0.0, "seed": None, "stream": True, "user": "u1"}
    assert upstream_body(body, "storyteller") == {
        "model": "storyteller",
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 9,
        "temperature": 0.0,
        "stream": True,
        "stream_options": {"include_usage": True},  # the upstream's counts, for metering
    }


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ("up=upstream:grpc:http://h/v1", "kind must be one of openai"),
        ("up=upstream:openai:", "at least one replica"),
        ("up=upstream:openai:ftp://h/v1", "not an http(s) URL"),
        ("up=upstream:openai:http://h/v1|http://h/v1", "named twice"),
        ("up=upstream:openai:http://h/v1 key=sk-123", "key_env=VARIABLE, not inline"),
        ("up=upstream:openai:http://h/v1 colour=red", "unknown setting 'colour'"),
        ("up=upstream:openai:http://h/v1 timeout_s=0", "timeout_s must be > 0"),
        ("up=upstream:openai:http://h/v1 tokenizer=relative", "absolute path"),
        ("up=upstream:openai:http://h/v1 task=handler", "task must be one of embedding"),
        ("up=upstream:openai:http://h/v1 concurrency=0", "concurrency and max_batch must be"),
        ("up=upstream:openai:http://h/v1 max_batch=0", "concurrency and max_batch must be"),
    ],
)
def test_a_wrong_entry_stops_the_start_naming_the_model(entry, says):
    with pytest.raises(ConfigError, match="'up'") as raised:
        parse_model_specs(entry)
    assert says in str(raised.value)
    assert "sk-123" not in str(raised.value)


def test_an_unset_key_variable_is_a_config_error(monkeypatch):
    monkeypatch.delenv("NO_SUCH_KEY", raising=False)
    with pytest.raises(ConfigError, match="'up': key_env names NO_SUCH_KEY, which is not set"):
        parse_model_specs("up=upstream:openai:http://h/v1 key_env=NO_SUCH_KEY")
    config = parse_upstream("up", "openai:http://h/v1 key_env=NO_SUCH_KEY")
    with pytest.raises(ConfigError, match="NO_SUCH_KEY, which is not set"):
        config.api_key()
    monkeypatch.setenv("NO_SUCH_KEY", "s3cret")
    assert config.api_key() == "s3cret"


def test_a_replica_label_never_shows_credentials():
    assert replica_label("https://user:pw@h.example:8443/v1") == "https://h.example:8443/v1"


def test_the_breaker_opens_after_failures_then_lets_one_trial_through():
    replica = Replica("http://h/v1", failures_to_open=2, cooldown_s=0.2)
    replica.failed()
    assert replica.state() == "closed" and replica.admit()
    replica.failed()
    assert replica.state() == "open" and not replica.admit()
    time.sleep(0.25)
    assert replica.state() == "half-open"
    assert replica.admit() and not replica.admit()  # one trial at a time
    replica.failed()  # the trial failed: open again at once
    assert replica.state() == "open"
    time.sleep(0.25)
    assert replica.admit()
    replica.succeeded()
    assert replica.state() == "closed" and replica.failures == 0


def test_round_robin_skips_open_replicas():
    replicas = ReplicaSet(("http://a", "http://b"), failures=1, cooldown_s=60)
    firsts = [replicas.order()[0].base for _ in range(4)]
    assert firsts == ["http://a", "http://b", "http://a", "http://b"]
    replicas.replicas[0].failed()
    assert [r.base for r in replicas.order()] == ["http://b"]
    replicas.replicas[1].failed()
    assert replicas.order() == []


def test_the_upstream_total_is_split_exactly():
    assert split(10, [1, 1, 1]) == [4, 3, 3]
    assert split(7, [5, 2]) == [5, 2]
    assert sum(split(101, [3, 9, 27, 1])) == 101


def test_trace_headers_carry_the_trace_id():
    token = bind_trace_id("0af7651916cd43dd8448eb211c80319c")
    try:
        headers = trace_headers()
    finally:
        reset_trace_id(token)
    assert headers["X-Trace-Id"] == "0af7651916cd43dd8448eb211c80319c"
    assert headers["traceparent"].startswith("00-0af7651916cd43dd8448eb211c80319c-")
    token = bind_trace_id("client-chosen.id")
    try:
        parent = trace_headers()["traceparent"]
    finally:
        reset_trace_id(token)
    assert len(parent.split("-")[1]) == 32

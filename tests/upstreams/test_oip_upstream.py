"""An Open Inference Protocol upstream, without an engine: the entry, what is retried, the body.

A small stdlib HTTP server on loopback stands for each replica and records what it got,
so these run without MLServer (tests/upstreams/test_mlserver.py runs the real one).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from api.edge.errors import APIError
from api.observability.tracing import bind_trace_id, reset_trace_id
from api.runtime.handlers.specs import handler_entries
from api.runtime.specs import parse_model_specs
from api.runtime.upstreams.config import parse_upstream
from api.runtime.upstreams.oip import OIPUpstream
from tests.services import free_port

ANSWER = {"model_name": "doubler", "model_version": "1", "outputs": []}


class Replica(ThreadingHTTPServer):
    """Answers every request with `status` (and ANSWER plus a binary tail on 200)."""

    def __init__(self, status: int) -> None:
        self.status, self.seen = status, []
        super().__init__(("127.0.0.1", free_port()), Handler)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: Replica

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.seen.append((self.path, dict(self.headers), body))
        header = json.dumps(ANSWER).encode()
        self.send_response(self.server.status)
        if self.server.status == 200:
            self.send_header("Inference-Header-Content-Length", str(len(header)))
            header += b"\x00\x01\x02\x03"
        else:
            header = json.dumps({"error": "no such model"}).encode()
        self.send_header("Content-Length", str(len(header)))
        self.end_headers()
        self.wfile.write(header)

    def do_GET(self) -> None:  # readiness: ready
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def replicas(request) -> Iterator[list[Replica]]:
    servers = [Replica(status) for status in request.param]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield servers
    for server in servers:
        server.shutdown()
        server.server_close()


def _upstream(*bases: str) -> OIPUpstream:
    entry = f"upstream:oip:{'|'.join(bases)} model=doubler timeout_s=5 breaker_failures=1"
    (spec,) = parse_model_specs(f"tabular={entry}")
    assert (spec.task, spec.path) == ("oip", "")
    return OIPUpstream(parse_upstream(spec.id, spec.upstream))


def test_an_oip_entry_is_neither_a_local_nor_a_handler_model():
    models = "tabular=upstream:oip:http://127.0.0.1:8081|http://127.0.0.1:8082 model=iris"
    (spec,) = parse_model_specs(models)
    config = parse_upstream(spec.id, spec.upstream)
    assert (config.kind, config.model) == ("oip", "iris")
    assert config.replicas == ("http://127.0.0.1:8081", "http://127.0.0.1:8082")
    assert handler_entries(models) == {}


@pytest.mark.parametrize("replicas", [[200]], indirect=True)
def test_the_body_goes_through_byte_for_byte_with_trace_headers(replicas):
    dead = f"http://127.0.0.1:{free_port()}"  # refused: never ran there, so the next takes it
    upstream = _upstream(dead, replicas[0].base)
    body = b'{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"parameters":'
    body += b'{"binary_data_size":4}}]}\x00\x00\x80?'
    token = bind_trace_id("0123456789abcdef0123456789abcdef")
    try:
        answers = [
            upstream.infer(body, str(len(body) - 4), None, deadline=time.monotonic() + 5)
            for _ in range(2)
        ]
    finally:
        reset_trace_id(token)
    (path, headers, got), _ = replicas[0].seen
    assert path == "/v2/models/doubler/infer" and got == body
    assert headers["Inference-Header-Content-Length"] == str(len(body) - 4)
    assert headers["X-Trace-Id"] == "0123456789abcdef0123456789abcdef"
    assert headers["traceparent"].startswith("00-0123456789abcdef0123456789abcdef-")
    for answer in answers:
        assert answer.body.endswith(b"\x00\x01\x02\x03")
        header = json.loads(answer.body[: answer.header_length])
        assert header["model_name"] == "tabular"  # modelgate's id, not the upstream's
    assert upstream.check() == {dead: "breaker open", replicas[0].base: "ok"}


@pytest.mark.parametrize(
    ("replicas", "status", "retried"),
    [([503, 200], 200, True), ([502, 200], 502, False), ([500, 200], 502, False)],
    indirect=["replicas"],
)
def test_only_a_503_moves_a_post_to_the_next_replica(replicas, status, retried):
    upstream = _upstream(*(replica.base for replica in replicas))
    try:
        upstream.infer(b"{}", None, None, deadline=time.monotonic() + 5)
        got = 200
    except APIError as error:
        got = error.status
    assert got == status
    assert len(replicas[1].seen) == (1 if retried else 0)


@pytest.mark.parametrize("replicas", [[404]], indirect=True)
def test_an_upstream_refusal_keeps_its_status_and_message(replicas):
    upstream = _upstream(replicas[0].base)
    with pytest.raises(APIError) as refused:
        upstream.infer(b"{}", None, "9", deadline=time.monotonic() + 5)
    assert refused.value.status == 404 and "no such model" in refused.value.message
    assert replicas[0].seen[0][0] == "/v2/models/doubler/versions/9/infer"
    assert upstream.replicas.replicas[0].state() == "closed"  # it answered: it is up


@pytest.mark.parametrize("replicas", [[200]], indirect=True)
def test_v1_predict_inputs_become_a_one_item_request(replicas):
    from api.inference.upstream_predict import predict

    upstream = _upstream(replicas[0].base)
    fields = {"x": [[1, 2], [3, 4]], "label": "cat", "scale": 2}
    outputs = predict(upstream, fields, deadline=time.monotonic() + 5)
    sent = json.loads(replicas[0].seen[0][2])["inputs"]
    assert sent == [
        {"name": "x", "datatype": "FP32", "shape": [1, 2, 2], "data": [1, 2, 3, 4]},
        {"name": "label", "datatype": "BYTES", "shape": [1], "data": ["cat"]},
        {"name": "scale", "datatype": "FP32", "shape": [1], "data": [2]},
    ]
    assert outputs == {}  # the stand-in answers no outputs


@pytest.mark.parametrize("replicas", [[200]], indirect=True)
def test_v1_models_lists_an_oip_upstream_and_retrieves_it(replicas, make_app):
    from tests.tokens.conftest import make_account

    entry = f"tabular=upstream:oip:{replicas[0].base} model=doubler"
    app = make_app(MODELS=f"all-minilm-l6-v2,{entry}")
    account = make_account(app)
    headers = {"Authorization": "Bearer " + account.mint(scopes=("embed",))["token"]}
    listed = account.client.get("/v1/models", headers=headers).get_json()["data"]
    assert [(model["id"], model["task"]) for model in listed] == [
        ("all-minilm-l6-v2", "embedding"),
        ("tabular", "oip"),
    ]
    one = account.client.get("/v1/models/tabular", headers=headers).get_json()
    assert (one["object"], one["device"], one["owned_by"]) == ("model", "upstream", "modelgate")
    assert one["created"] == listed[1]["created"] > 0
    assert replicas[0].seen == []  # listed from the configuration, without a call upstream

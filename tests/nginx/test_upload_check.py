"""nginx checks an upload's credential before it reads the body: the shipped site in a real
nginx, in front of a stand-in app whose answer to the check each test chooses."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from deploy.nginx_site import Site
from tests.nginx.server import API, run_nginx, self_signed, send_raw
from tests.services import ROOT, free_port

ALLOWED = "https://app.modelgate.test"
CHECK = "/v1/files?limit=1"  # what nginx asks the app (nginx/snippets/upload-check.conf)


@dataclass
class StandIn:
    """The app's side: its answer to the check, and every request it was sent."""

    check: tuple[int, dict[str, str]] = (200, {})
    seen: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)

    def handler(self) -> type[BaseHTTPRequestHandler]:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self.answer(*(stand_in.check if self.path == CHECK else (200, {})))

            def do_POST(self) -> None:
                self.answer(200, {})

            def answer(self, status: int, headers: dict[str, str]) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                stand_in.seen.append((self.command, self.path, dict(self.headers), body))
                self.send_response(status)
                for name, value in {**headers, "Content-Length": "2"}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass

        return Handler


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[tuple[int, StandIn]]:
    tmp = tmp_path_factory.mktemp("upload-check")
    stand_in = StandIn()
    app = ThreadingHTTPServer(("127.0.0.1", 0), stand_in.handler())
    threading.Thread(target=app.serve_forever, daemon=True).start()
    cert, key = self_signed(tmp)
    https = free_port()
    config = Site(
        api_domain=API, app_domain="app.modelgate.test",
        upstreams=(f"127.0.0.1:{app.server_address[1]}",), cert=cert, key=key,
        web_root=str(ROOT / "web" / "dist"), cors_origins=(ALLOWED,),
        access_log=str(tmp / "access.json"), http_listen=f"127.0.0.1:{free_port()}",
        https_listen=f"127.0.0.1:{https}", file_max_bytes=1024 * 1024,
    )  # fmt: skip
    try:
        with run_nginx(config, tmp):
            yield https, stand_in
    finally:
        app.shutdown()


def upload(port: int, trace: str, *, sent: int, announced: int = 512 * 1024) -> bytes:
    head = (
        f"POST /v1/files HTTP/1.1\r\nHost: {API}\r\nAuthorization: Bearer mg_checked\r\n"
        f"X-Trace-Id: {trace}\r\nOrigin: {ALLOWED}\r\n"
        f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {announced}\r\n\r\n"
    )
    return head.encode() + b"x" * sent


@pytest.mark.parametrize(
    ("check", "status", "code", "retry_after"),
    [
        ((401, {}), 401, "unauthorized", None),
        ((403, {}), 403, "forbidden", None),
        ((429, {"Retry-After": "7"}), 429, "rate_limited", "7"),  # too many failed credentials
        ((503, {"Retry-After": "30"}), 503, "service_unavailable", "30"),
        ((500, {}), 503, "service_unavailable", "1"),
    ],
)
def test_a_refused_check_is_answered_in_json_before_the_body(
    site, check, status, code, retry_after
):
    port, stand_in = site
    stand_in.check, stand_in.seen[:] = check, []
    trace = f"check-{uuid.uuid4().hex[:12]}"
    # 1 KB of 512 KB sent: a timeout here means nginx waited for the body.
    answer = send_raw(port, upload(port, trace, sent=1024))
    assert answer.status == status, answer.body[:300]
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.headers.get("Retry-After") == retry_after
    assert answer.headers["Access-Control-Allow-Origin"] == ALLOWED
    error = json.loads(answer.body)["error"]
    assert error["code"] == code and error["trace_id"] == trace
    assert [(method, path) for method, path, _, _ in stand_in.seen] == [("GET", CHECK)]


def test_a_passed_check_lets_the_whole_body_through_and_the_check_gets_no_body(site):
    port, stand_in = site
    stand_in.check, stand_in.seen[:] = (200, {}), []
    trace = f"check-{uuid.uuid4().hex[:12]}"
    answer = send_raw(port, upload(port, trace, sent=300_000, announced=300_000))
    assert answer.status == 200
    (check_method, check_path, check_headers, check_body), post = stand_in.seen
    assert (check_method, check_path, check_body) == ("GET", CHECK, b"")
    assert check_headers["Authorization"] == "Bearer mg_checked"
    assert check_headers["X-Trace-Id"] == trace
    assert "Content-Length" not in check_headers and "Content-Type" not in check_headers
    assert post[:2] == ("POST", "/v1/files") and len(post[3]) == 300_000


def test_a_preflight_is_answered_without_a_check(site):
    port, stand_in = site
    stand_in.seen[:] = []
    answer = send_raw(
        port,
        f"OPTIONS /v1/files HTTP/1.1\r\nHost: {API}\r\nOrigin: {ALLOWED}\r\n"
        "Access-Control-Request-Method: POST\r\n\r\n".encode(),
    )
    assert answer.status == 204 and answer.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert stand_in.seen == []

"""Every log line, the app's and nginx's, is UTF-8 JSON that fits elk/schema/log-line.schema.json,
and none carries a secret or a prompt: a whole user session driven through nginx to gunicorn,
then requests whose path, User-Agent and Host carry bytes that are not UTF-8."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import jsonschema
import requests
import urllib3

from deploy.nginx_site import Site
from tests.auth.conftest import PASSWORD, link_token, mailbox  # noqa: F401 - the fixture
from tests.nginx.server import API, APP, run_nginx, self_signed, send_raw
from tests.services import ROOT, free_port, gunicorn

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
SCHEMA = json.loads((ROOT / "elk" / "schema" / "log-line.schema.json").read_text())
EMBEDDED = "The secret ingredient is a blue moonflower petal."
PROMPT = "Once upon a time a clockmaker hid a silver key"
# Raw bytes a client may send where nginx logs text: 0xff is never UTF-8; é is.
RAW_REQUESTS = (
    b"GET /v1/odd\xffpath HTTP/1.1\r\nHost: " + API.encode() + b"\r\nUser-Agent: bot\xff/1\r\n",
    b"GET /v1/encoded%FFpath HTTP/1.1\r\nHost: " + API.encode() + b"\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: api\xff.modelgate.test\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: " + API.encode() + b"\r\nUser-Agent: caf\xc3\xa9/2\r\n",
)


def lines(path: Path) -> list[dict]:
    """Each line as JSON; a byte that is not UTF-8 fails here."""
    text = path.read_bytes().decode("utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_a_session_logs_only_schema_lines_without_secrets(
    tmp_path,
    live_database,
    redis_url,
    redis_db,
    mailbox,  # noqa: F811
):
    env = {
        "DATABASE_URL": live_database,
        "REDIS_URL": redis_url,
        "MODELS": "all-minilm-l6-v2,storyteller",
        "MAIL_SERVER": "127.0.0.1",
        "MAIL_PORT": str(mailbox.port),
        "TRUSTED_PROXIES": "1",
        "RATE_LIMIT_AUTH": "1000/minute",
    }
    cert, key = self_signed(tmp_path)
    https = free_port()
    with gunicorn(env, tmp_path, workers=2) as base:
        site = Site(
            api_domain=API, app_domain=APP, upstreams=(base.removeprefix("http://"),),
            cert=cert, key=key, web_root=str(ROOT / "web" / "dist"),
            cors_origins=("https://app.modelgate.test",), access_log=str(tmp_path / "nginx.json"),
            http_listen=f"127.0.0.1:{free_port()}", https_listen=f"127.0.0.1:{https}",
        )  # fmt: skip
        with run_nginx(site, tmp_path / "nginx"), requests.Session() as http:
            http.verify = False
            http.trust_env = False  # REQUESTS_CA_BUNDLE would override verify=False
            http.headers["Host"] = API
            url = f"https://127.0.0.1:{https}"
            trace = f"contract-{uuid.uuid4().hex[:8]}"
            email = "logger@example.org"
            body = {"email": email, "password": PASSWORD, "name": "Lou"}
            assert http.post(f"{url}/v1/auth/register", json=body).status_code == 202
            verification = link_token(mailbox.wait_for(email, "Confirm"))
            verify = http.post(f"{url}/v1/auth/verify-email", json={"token": verification})
            assert verify.status_code == 200
            login = http.post(f"{url}/v1/auth/login", json={"email": email, "password": PASSWORD})
            access = login.json()["access_token"]
            refresh_cookie = login.cookies.get("mg_refresh") or ""
            session = {"Authorization": f"Bearer {access}"}
            scopes = {"name": "logs", "scopes": ["embed", "generate"]}
            minted = http.post(f"{url}/v1/tokens", headers=session, json=scopes).json()["token"]
            bearer = {"Authorization": f"Bearer {minted}", "X-Trace-Id": trace}
            embedded = http.post(f"{url}/v1/embeddings", headers=bearer, json={"input": EMBEDDED})
            assert embedded.status_code == 200
            streamed = http.post(
                f"{url}/v1/completions", headers=bearer, stream=True,
                json={"model": "storyteller", "prompt": PROMPT, "max_tokens": 12, "stream": True},
            )  # fmt: skip
            story = b"".join(streamed.iter_content(None)).decode()
            assert "[DONE]" in story
            bad = http.post(f"{url}/v1/embeddings", headers=bearer, json={"input": [], "x": 1})
            assert bad.status_code == 400
            assert http.get(f"{url}/v1/nope", headers=bearer).status_code == 404
            for raw in RAW_REQUESTS:
                assert send_raw(https, raw + b"Connection: close\r\n\r\n").status < 500
            time.sleep(0.5)  # both logs are written as each answer leaves

    app_lines, nginx_lines = lines(tmp_path / "app.log"), lines(tmp_path / "nginx.json")
    validator = jsonschema.Draft202012Validator(
        SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    for line in app_lines + nginx_lines:
        errors = [error.message for error in validator.iter_errors(line)]
        assert errors == [], (line, errors)
    assert len(nginx_lines) >= 8 and len(app_lines) >= 8
    # Text that is not UTF-8 is kept up to its first bad byte and marked; UTF-8 is kept whole.
    paths = {line["url.path"] for line in nginx_lines}
    assert {"/v1/odd\ufffd", "/v1/encoded\ufffd"} <= paths
    agents = {line.get("user_agent.original") for line in nginx_lines}
    assert {"bot\ufffd", "caf\u00e9/2"} <= agents
    assert "api\ufffd" in {line.get("url.domain") for line in nginx_lines}
    for source in (app_lines, nginx_lines):
        traced = [line for line in source if line.get("trace.id") == trace]
        assert {line["url.path"] for line in traced if "url.path" in line} >= {
            "/v1/embeddings", "/v1/completions", "/v1/nope"
        }  # fmt: skip
    batches = [line for line in app_lines if line["message"] == "inference batch"]
    assert any(trace in line["inference.trace_ids"] for line in batches)
    streamed_line = next(line for line in app_lines if line.get("url.path") == "/v1/completions")
    assert streamed_line["event.duration"] > 1_000_000  # nanoseconds: more than a millisecond
    everything = (tmp_path / "app.log").read_text() + (tmp_path / "nginx.json").read_text()
    for secret in (PASSWORD, verification, access, minted, EMBEDDED, PROMPT, story.split("\n")[0]):
        assert secret not in everything, secret[:20]
    if refresh_cookie:
        assert refresh_cookie not in everything

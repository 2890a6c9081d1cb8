"""Under `make run` (no mail server) the verification link is printed plainly and works.

Issue 24: the link pointed at FRONTEND_URL's old default (Vite's port, where nothing
listens) inside an escaped JSON string, and "Listening" came long before an answer.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import requests

from api.config import Config
from tests.auth.conftest import PASSWORD
from tests.services import ROOT, free_port, gunicorn

LINK_LINE = re.compile(r"^Verification link for (\S+): (http\S+)$", re.MULTILINE)


def test_in_development_links_point_at_what_gunicorn_serves():
    assert Config({"GUNICORN_BIND": "127.0.0.1:8123"}).FRONTEND_URL == "http://127.0.0.1:8123"
    assert Config({"GUNICORN_BIND": "0.0.0.0:9000"}).FRONTEND_URL == "http://127.0.0.1:9000"
    assert Config({}).FRONTEND_URL == "http://127.0.0.1:8000"  # gunicorn.conf.py's default
    configured = {"GUNICORN_BIND": "127.0.0.1:8123", "FRONTEND_URL": "https://app.example.org/"}
    assert Config(configured).FRONTEND_URL == "https://app.example.org"
    production = Config({"MODELGATE_ENV": "production", "GUNICORN_BIND": "127.0.0.1:8123"})
    assert production.FRONTEND_URL != "http://127.0.0.1:8123"  # behind nginx: set it


def test_production_never_writes_an_email_to_the_log(make_app, log_lines, capsys):
    app = make_app(MAIL_SERVER=None)
    app.config["MODELGATE_ENV"] = "production"  # it refuses to start so; this is defence in depth
    response = app.test_client().post(
        "/v1/auth/register", json={"email": "prod@example.org", "password": PASSWORD}
    )
    assert response.status_code == 202
    lines = log_lines()
    assert not [line for line in lines if line.get("event.dataset") == "mail.outbox"]
    assert [line for line in lines if line["message"] == "email not sent: no MAIL_SERVER"]
    assert "token=" not in str(lines) and "token=" not in capsys.readouterr().err


def _link_for(stderr: Path, address: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for to, link in LINK_LINE.findall(stderr.read_text(errors="replace")):
            if to == address:
                return link
        time.sleep(0.1)
    raise AssertionError(f"no verification link line for {address} in {stderr}")


def test_make_run_prints_a_link_that_verifies_the_account(database_url, tmp_path):
    port = free_port()
    env = {
        "DATABASE_URL": database_url,
        "FRONTEND_URL": "",  # unset: the default under test
        "MAIL_SERVER": "",
        "WEB_DIST": str(ROOT / "web" / "dist"),
    }
    with gunicorn(env, tmp_path, workers=2, port=port) as base:
        address = "first.hour@example.org"
        registered = requests.post(
            f"{base}/v1/auth/register", json={"email": address, "password": PASSWORD}, timeout=10
        )
        assert registered.status_code == 202
        link = _link_for(tmp_path / "gunicorn.stderr", address)
        parts = urlsplit(link)
        assert f"{parts.scheme}://{parts.netloc}" == base == f"http://127.0.0.1:{port}"
        assert parts.path == "/verify-email"
        if (ROOT / "web" / "dist" / "index.html").exists():  # built by make run and make test
            page = requests.get(link, timeout=10)
            assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
        # What the web app's /verify-email page does with the link's token.
        token = parse_qs(parts.query)["token"][0]
        verified = requests.post(f"{base}/v1/auth/verify-email", json={"token": token}, timeout=10)
        assert verified.status_code == 200, verified.text
        login = requests.post(
            f"{base}/v1/auth/login", json={"email": address, "password": PASSWORD}, timeout=10
        )
        assert login.status_code == 200, login.text


def test_gunicorn_says_once_when_the_service_answers(database_url, tmp_path):
    port = free_port()
    with gunicorn({"DATABASE_URL": database_url}, tmp_path, workers=2, port=port) as base:
        assert requests.get(f"{base}/readyz", timeout=10).status_code == 200
        time.sleep(1)  # the second worker has loaded too by now
        stderr = (tmp_path / "gunicorn.stderr").read_text(errors="replace")
    ready = [line for line in stderr.splitlines() if "modelgate is ready at" in line]
    assert len(ready) == 1, stderr
    assert f"modelgate is ready at {base} (/readyz: 200)" in ready[0]
    assert stderr.index("Listening at") < stderr.index("modelgate is ready at")

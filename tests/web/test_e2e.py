"""The web app end to end: Debian's Chromium, driven by playwright-core (web/e2e/flow.mjs),
against gunicorn on PostgreSQL and Redis with both models and the OCR example handler
(`ocr-en`), set up as `make run` is: no
mail server, so the verification link is the plain line the server prints in its log
("Verification link for ...", pointing at the address gunicorn serves), which the
browser opens.

The playground reads an image rendered here with Pillow (two lines of known text) with the
OCR model: boxes drawn over it and the text shown.

The access token lives 8 seconds here, so the flow also proves the silent refresh.
`SCREENSHOTS_DIR` (default: this test's temporary folder) receives the screenshots;
`make screenshots` points it at docs/screenshots.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests

from api import create_app
from api.admin.service import create_admin
from api.config import TestConfig
from api.extensions import db
from models.ocr.evaluate import find_fonts, load_font, render
from tests.services import ROOT, celery_worker, free_port, gunicorn

WEB = ROOT / "web"
CHROMIUM = "/usr/bin/chromium"
ADMIN_EMAIL, ADMIN_PASSWORD = "root@example.org", "the admin's long passphrase"
OCR_LINES = ["HELLO WORLD 42", "READ ME IN CHROMIUM"]


def render_page(path: Path) -> None:
    """Two lines of large bold print, as models/ocr/evaluate.py renders its held set."""
    fonts = {font.name: font for font in find_fonts()}
    font = fonts.get("DejaVuSans-Bold.ttf") or next(iter(fonts.values()), None)
    render(OCR_LINES, load_font(font, 40)).save(path)


def wait_for_model(base: str, model: str, timeout: float = 120.0) -> None:
    """Until /readyz says `model` is ready (its process loads the weights after the start)."""
    until = time.monotonic() + timeout
    state = None
    while time.monotonic() < until:
        state = requests.get(f"{base}/readyz", timeout=5).json().get("models", {}).get(model)
        if state == "ready":
            return
        time.sleep(0.5)
    raise AssertionError(f"{model} not ready after {timeout} s: {state}")


def make_admin(database_url: str) -> None:
    app = create_app(TestConfig(SQLALCHEMY_DATABASE_URI=database_url))
    with app.app_context():
        create_admin(ADMIN_EMAIL, ADMIN_PASSWORD)
        db.engine.dispose()


def test_the_whole_journey_in_chromium(tmp_path, live_database, redis_url, redis_db):
    if not Path(CHROMIUM).exists() or not (WEB / "dist" / "index.html").exists():
        pytest.fail(
            "needs /usr/bin/chromium and a built web/dist (make test installs and builds both)"
        )
    make_admin(live_database)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "DATABASE_URL": live_database,
        "REDIS_URL": redis_url,
        "MODELS": "all-minilm-l6-v2,storyteller,ocr-en=handler:models.ocr.handler:OCR",
        "WEB_DIST": str(WEB / "dist"),
        # No FRONTEND_URL, no MAIL_SERVER: as under `make run`, links point at GUNICORN_BIND.
        "CORS_ORIGINS": base,
        "MAIL_SERVER": "",
        "FRONTEND_URL": "",
        "ACCESS_TOKEN_SECONDS": "8",
        "KIBANA_URL": "https://kibana.modelgate.test",
        "RATE_LIMIT_AUTH": "1000/minute",
        "RATE_LIMIT_DEFAULT": "10000/minute",
    }
    shots = Path(os.environ.get("SCREENSHOTS_DIR") or tmp_path / "screenshots")
    home = tmp_path / "home"
    home.mkdir()
    page = tmp_path / "hello.png"
    render_page(page)
    with gunicorn(env, tmp_path, workers=2, port=port), celery_worker(env, tmp_path):
        wait_for_model(base, "ocr-en")
        result = subprocess.run(
            [shutil.which("node") or "node", "e2e/flow.mjs"],
            cwd=WEB,
            env={
                **os.environ,
                "HOME": str(home),
                "BASE_URL": base,
                "MAIL_LOG": str(tmp_path / "gunicorn.stderr"),
                "ADMIN_EMAIL": ADMIN_EMAIL,
                "ADMIN_PASSWORD": ADMIN_PASSWORD,
                "SCREENSHOTS_DIR": str(shots),
                "CHROMIUM": CHROMIUM,
                "OCR_IMAGE": str(page),
                "OCR_TEXT": "\n".join(OCR_LINES),
            },
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    print(result.stdout)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    for name in ("dashboard", "tokens", "playground", "ocr", "usage", "batches", "admin"):
        assert (shots / f"{name}.png").stat().st_size > 10_000, name

"""The web app end to end: Debian's Chromium, driven by playwright-core (web/e2e/flow.mjs),
against gunicorn on PostgreSQL and Redis with both models, set up as `make run` is: no
mail server, so the verification link is the plain line the server prints in its log
("Verification link for ...", pointing at the address gunicorn serves), which the
browser opens.

The access token lives 8 seconds here, so the flow also proves the silent refresh.
`SCREENSHOTS_DIR` (default: this test's temporary folder) receives the screenshots;
`make screenshots` points it at docs/screenshots.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from api import create_app
from api.admin.service import create_admin
from api.config import TestConfig
from api.extensions import db
from tests.services import ROOT, celery_worker, free_port, gunicorn

WEB = ROOT / "web"
CHROMIUM = "/usr/bin/chromium"
ADMIN_EMAIL, ADMIN_PASSWORD = "root@example.org", "the admin's long passphrase"


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
        "MODELS": "all-minilm-l6-v2,storyteller",
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
    with gunicorn(env, tmp_path, workers=2, port=port), celery_worker(env, tmp_path):
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
            },
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    print(result.stdout)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    for page in ("dashboard", "tokens", "playground", "usage", "batches", "admin"):
        assert (shots / f"{page}.png").stat().st_size > 10_000, page

"""The web app's API client is generated from the API's current OpenAPI document.

`web/openapi.json` must equal what the app describes now, and `web/src/client` what
@hey-api/openapi-ts makes of it; regenerate both with `make client` when this fails.
"""

from __future__ import annotations

import filecmp
import json
import os
import subprocess
from pathlib import Path

import pytest

from api import create_app
from api.config import TestConfig
from api.edge.openapi import openapi
from tests.services import ROOT

WEB = ROOT / "web"
STALE = "stale: run `make client` and commit web/openapi.json and web/src/client"


def test_the_committed_document_is_the_apis_own(tmp_path):
    app = create_app(TestConfig(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'db.sqlite'}"))
    with app.app_context():
        current = json.loads(json.dumps(openapi.spec.to_dict()))
    committed = json.loads((WEB / "openapi.json").read_text())
    assert committed == current, STALE


def _differences(compare: filecmp.dircmp) -> list[str]:
    found = [*compare.left_only, *compare.right_only, *compare.diff_files, *compare.funny_files]
    for sub in compare.subdirs.values():
        found += _differences(sub)
    return found


def test_the_committed_client_is_generated_from_it(tmp_path):
    generator = WEB / "node_modules" / ".bin" / "openapi-ts"
    if not generator.exists():
        pytest.fail("web/node_modules is missing: `make test` runs npm ci first")
    env = {**os.environ, "OPENAPI_OUTPUT": str(tmp_path / "client")}
    subprocess.run([str(generator)], cwd=WEB, env=env, check=True, capture_output=True)
    differences = _differences(filecmp.dircmp(WEB / "src" / "client", tmp_path / "client"))
    assert differences == [], STALE

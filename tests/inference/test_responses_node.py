"""The Responses API as the official OpenAI Node client sees it: create, stream, an error class.

The client is installed in tests/inference/node (`make test` runs `npm ci` there) and
runs against the live server of tests/contract/test_openai_client.py.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.contract.test_openai_client import server, tokens  # noqa: F401

NODE = Path(__file__).resolve().parent / "node"


def test_node_client_creates_and_streams(server, tokens):  # noqa: F811
    if not (NODE / "node_modules" / "openai").exists():
        pytest.fail("tests/inference/node/node_modules is missing: make test runs npm ci there")
    env = {**os.environ, "MODELGATE_URL": server, "MODELGATE_TOKEN": tokens["all"]}
    ran = subprocess.run(
        ["node", "responses.mjs"], cwd=NODE, env=env, capture_output=True, text=True, timeout=120
    )
    assert ran.returncode == 0, ran.stderr
    seen = json.loads(ran.stdout)
    created = seen["created"]
    assert created["object"] == "response" and created["status"] == "incomplete"
    assert created["output_text"] and created["usage"]["output_tokens"] == 5

    events = seen["events"]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[0]["type"] == "response.created"
    assert events[-1]["type"] == "response.incomplete"
    deltas = [e["delta"] for e in events if e["type"] == "response.output_text.delta"]
    assert len(deltas) >= 2 and "".join(deltas) == events[-1]["response"]["output_text"]

    assert seen["refusal"] == {"badRequest": True, "status": 400, "param": "tools"}

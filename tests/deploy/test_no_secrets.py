"""No secret is committed: no private key, no cloud key, no filled-in secret setting."""

from __future__ import annotations

import re
import subprocess

from tests.services import ROOT

PATTERNS = {
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "AWS access key": re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    "secret setting": re.compile(r"^(SECRET_KEY|JWT_SECRET_KEY|MAIL_PASSWORD)=(?!\.\.\.)\S+", re.M),
    "password in a URL": re.compile(r"://[^:/\s@]+:(?!\.\.\.@)[^@\s/]+@"),
}


def test_no_secret_is_in_a_tracked_file():
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    found = []
    for name in tracked:
        if name.endswith((".png", ".safetensors", ".json")) or name.startswith("tests/"):
            continue
        text = (ROOT / name).read_text(errors="ignore")
        found += [f"{name}: {kind}" for kind, pattern in PATTERNS.items() if pattern.search(text)]
    assert found == []
    assert not any(name.endswith((".env", "deploy.toml")) for name in tracked)

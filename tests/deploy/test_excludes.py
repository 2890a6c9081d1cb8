"""What a release leaves behind: rsync, given the fabfile's excludes, sends the code only."""

from __future__ import annotations

import subprocess

from deploy.releases import EXCLUDES


def test_a_release_leaves_out_virtualenvs_dependencies_and_local_data(tmp_path):
    source = tmp_path / "checkout"
    for name in (
        "api/app.py",
        ".venv/bin/python",
        ".venv-upstreams/bin/python",  # make test's test-only engines: 1.8 GB with the other
        ".venv-mlserver/bin/python",
        "web/node_modules/react/index.js",
        "instance/modelgate.db",
        ".env",
        "api/__pycache__/app.cpython-311.pyc",
        "web/src/main.tsx",
    ):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text("x")
    command = ["rsync", "-a", "--dry-run", "--out-format=%n"]
    command += [f"--exclude={pattern}" for pattern in EXCLUDES]
    listed = subprocess.run(
        [*command, f"{source}/", str(tmp_path / "release")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    files = sorted(name for name in listed if not name.endswith("/"))
    assert files == ["api/app.py", "web/src/main.tsx"]

"""The systemd units as shipped: `systemd-analyze verify` accepts them, they stop gracefully,
and they may write the service's data but not the code or the venv it runs."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from deploy.templates import service_unit
from tests.services import ROOT


@pytest.mark.parametrize(
    ("name", "program"), [("modelgate.service", "gunicorn"), ("modelgate-worker.service", "celery")]
)
def test_systemd_accepts_the_unit(tmp_path, name, program):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is missing (Debian's systemd package)")
    root = tmp_path / "srv"
    executable = root / "current" / ".venv" / "bin" / program
    executable.parent.mkdir(parents=True)
    executable.write_text("#!/bin/sh\n")
    executable.chmod(0o755)
    unit = tmp_path / name
    unit.write_text(service_unit(str(root), "root", name))
    checked = subprocess.run(
        [analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True, check=False
    )
    complaints = [line for line in checked.stderr.splitlines() if name in line]
    assert checked.returncode == 0 and complaints == [], checked.stderr


def test_systemd_waits_longer_than_gunicorns_graceful_stop():
    unit = service_unit("/srv/modelgate", "modelgate")
    stop = int(re.search(r"^TimeoutStopSec=(\d+)$", unit, re.M).group(1))  # type: ignore[union-attr]
    conf = (ROOT / "gunicorn.conf.py").read_text()
    graceful = int(re.search(r"^graceful_timeout = (\d+)$", conf, re.M).group(1))  # type: ignore[union-attr]
    assert stop > graceful
    assert "Restart=on-failure" in unit and "ExecReload=/bin/kill -s HUP $MAINPID" in unit
    assert "EnvironmentFile=/etc/modelgate/env" in unit
    assert "@@" not in unit and "WorkingDirectory=/srv/modelgate/current" in unit


@pytest.mark.parametrize("name", ["modelgate.service", "modelgate-worker.service"])
def test_the_service_may_write_its_data_but_not_its_code(name):
    unit = service_unit("/srv/modelgate", "modelgate", name)
    writable = re.search(r"^ReadWritePaths=(.+)$", unit, re.M).group(1).split()  # type: ignore[union-attr]
    code = ("/srv/modelgate/releases/1/wsgi.py", "/srv/modelgate/shared/venv/bin/python")
    assert [path for path in code if any(path.startswith(f"{w}/") for w in writable)] == []
    assert {"/srv/modelgate/shared/instance", "/srv/modelgate/shared/log"} <= set(writable)
    assert "ProtectSystem=strict" in unit and "LogsDirectory=modelgate" in unit

"""Fixtures for the deploy tests: two sshd hosts, a deploy user who may sudo, a deploy area."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.hosts import DEPLOY_USER, HOSTS, SSHD, known_hosts_line, new_key, start_sshd
from tests.services import free_port


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[dict]:
    """One sshd per host address, the same host key on both, a known_hosts that lists it."""
    if not Path(SSHD).exists() or shutil.which("rsync") is None:
        pytest.fail("openssh-server and rsync are needed (.ci/run installs them)")
    Path("/run/sshd").mkdir(exist_ok=True)
    key, host_key = tmp_path / "id_ed25519", tmp_path / "host_ed25519"
    public = Path(tempfile.mkdtemp(prefix="modelgate-sshd-", dir="/var/tmp"))
    public.chmod(0o755)
    authorized_keys = public / "authorized_keys"
    authorized_keys.write_text(new_key(key).read_text())
    host_public = new_key(host_key)
    port = free_port()
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("".join(known_hosts_line(host, port, host_public) for host in HOSTS))
    processes = [start_sshd(tmp_path, host, port, host_key, authorized_keys) for host in HOSTS]
    time.sleep(0.5)
    try:
        yield {
            "user": "root",
            "port": port,
            "key": str(key),
            "known_hosts": str(known_hosts),
            "host_key": host_public,
        }
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)
        shutil.rmtree(public)


@pytest.fixture(scope="session")
def deploy_user() -> str:
    """A login user with passwordless sudo, as docs/deploy.md asks of the servers.

    Made once on this machine and left in place: another test session may be using it.
    """
    if shutil.which("sudo") is None:
        pytest.fail("sudo is needed on the deploy test's hosts (.ci/run installs it)")
    if subprocess.run(["id", "-u", DEPLOY_USER], capture_output=True, check=False).returncode:
        subprocess.run(
            ["useradd", "--system", "--user-group", "--shell", "/bin/sh",
             "--home-dir", "/", "--no-create-home", DEPLOY_USER],
            check=True,
        )  # fmt: skip
        # Not locked ("!"), which sshd without PAM would refuse even with a key; no password.
        subprocess.run(["usermod", "-p", "*", DEPLOY_USER], check=True)
    sudoers = Path(f"/etc/sudoers.d/{DEPLOY_USER}")
    if not sudoers.exists():
        sudoers.write_text(f"{DEPLOY_USER} ALL=(ALL) NOPASSWD: ALL\n")
        sudoers.chmod(0o440)
    return DEPLOY_USER


@pytest.fixture
def deploy_area() -> Iterator[Path]:
    """A folder for the hosts' deploy roots that every user may pass through (tmp_path may not)."""
    folder = Path(tempfile.mkdtemp(prefix="modelgate-deploy-", dir="/var/tmp"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)

"""Who may write what on a host after `fab provision` and `fab deploy`.

gunicorn answers the internet as the service user: were it able to write the code or the
venv it runs, one bug in it could leave code that every later start would run. The
migrations need the secrets of the root-only env file, which must not be loosened for
them (nor for the deploy user, who logs in over SSH).
"""

from __future__ import annotations

import os
import pwd
import subprocess
from pathlib import Path

from tests.deploy.hosts import (
    HOSTS,
    SERVICE_USER,
    checkout,
    fab,
    output,
    stop_app,
    write_env,
    write_settings,
)
from tests.services import free_port


def run_as(user: str, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["runuser", "-u", user, "--", *command], capture_output=True, text=True, check=False
    )


def test_the_service_user_writes_its_data_and_never_its_code(
    tmp_path, sshd, deploy_user, deploy_area, live_database, redis_db
):
    host = HOSTS[0]
    root = deploy_area / "root"
    env = tmp_path / "etc" / "env"  # this host's env_file, where nothing is yet
    values = {"root": str(root), "bind": f"{host}:{free_port()}", "env_file": str(env)}
    ssh = {**sshd, "user": deploy_user}
    source = checkout(tmp_path / "source")
    settings = write_settings(tmp_path / "deploy.toml", ssh, source, {host: values})
    default_env = Path("/etc/modelgate/env")
    before = default_env.stat() if default_env.exists() else None
    try:
        # provision makes the host's own env_file, root-only in a root-only folder.
        done = fab(settings, "provision", hosts=(host,))
        assert done.returncode == 0, f"fab provision:\n{output(done)}"
        mode = env.stat()
        assert (mode.st_mode & 0o777, mode.st_uid, mode.st_gid, mode.st_size) == (0o600, 0, 0, 0)
        assert env.parent.stat().st_mode & 0o777 == 0o700
        after = default_env.stat() if default_env.exists() else None
        assert after == before, "provision wrote /etc/modelgate/env, not the host's env_file"
        write_env(env, database=live_database, bind=values["bind"], root=root)

        # Provisioning again (a second host, a new unit) must not hand the code over either.
        for task in ("deploy", "provision"):
            done = fab(settings, task, hosts=(host,))
            assert done.returncode == 0, f"fab {task}:\n{output(done)}"
            assert ("migrating the database" in done.stdout) == (task == "deploy")

        # The service user can write its data folders and nothing else of the deploy root.
        found = run_as(SERVICE_USER, "find", str(root), "!", "-type", "l", "-writable")
        data = tuple(f"{root}/shared/{folder}" for folder in ("instance", "log", "run"))
        writable = found.stdout.split()
        assert [path for path in writable if not path.startswith(data)] == []
        assert set(data) <= set(writable)
        for code in ("current/", "current/wsgi.py", "current/.venv/bin/", "shared/", "releases/"):
            assert run_as(SERVICE_USER, "test", "-w", f"{root}/{code}").returncode != 0, code

        # gunicorn runs as the service user, and the env file is still root's alone.
        pid = int((root / "shared" / "run" / "gunicorn.pid").read_text())
        assert os.stat(f"/proc/{pid}").st_uid == pwd.getpwnam(SERVICE_USER).pw_uid
        mode = env.stat()
        assert (mode.st_mode & 0o777, mode.st_uid, mode.st_gid) == (0o600, 0, 0)
    finally:
        stop_app(root)

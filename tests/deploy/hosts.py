"""The deploy tests' app hosts: sshd on loopback addresses, their settings file, `fab` on them.

Each host is an sshd of its own on 127.0.0.2 or 127.0.0.3 of this machine, so a test can
look at what a deploy left on a host with its own eyes (files, owners, processes).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from deploy.releases import EXCLUDES
from tests.services import ROOT
from tests.stack import alive

HOSTS = ("127.0.0.2", "127.0.0.3")
SSHD = "/usr/sbin/sshd"
DEPLOY_USER = "mgtest-deploy"  # logs in with the test's key and may sudo, like docs/deploy.md's
SERVICE_USER = "mgtest-app"  # runs gunicorn and the migrations; `fab provision` creates it
# Left out of the copy of this checkout a test deploys: what a release never ships (the
# fabfile's own excludes: venvs, node_modules, caches, the instance) and the reports a local
# run leaves, so each deploy moves only code, not the suite's 2 GB of engine venvs.
NOT_SHIPPED = (*EXCLUDES, "schemathesis-report", "htmlcov")


def start_sshd(
    folder: Path, host: str, port: int, host_key: Path, authorized_keys: Path
) -> subprocess.Popen[bytes]:
    """An sshd on `host:port` that lets in the holders of `authorized_keys`, as any user.

    sshd reads that file as the user who logs in: it must be where every user may read it.
    """
    config = folder / f"sshd-{host}.conf"
    config.write_text(
        f"ListenAddress {host}:{port}\nHostKey {host_key}\nPidFile {folder}/sshd-{host}.pid\n"
        f"AuthorizedKeysFile {authorized_keys}\nPasswordAuthentication no\n"
        "PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\n"
        "Subsystem sftp internal-sftp\n"
    )
    command = [SSHD, "-D", "-e", "-f", str(config)]
    prepare = python_mounts(folder / f"python-{host}")
    if prepare:
        command = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                   f"{prepare} && exec {shlex.join(command)}"]  # fmt: skip
    return subprocess.Popen(command)


def python_mounts(stage: Path) -> str:
    """Mounts that let every user on the hosts reach this Python ("" where they already can).

    pyenv may keep the interpreter under /root (0700), where a host's service user could not
    run it. sshd then starts in a mount namespace of its own, in which an empty, open folder
    covers /root and the interpreter is mounted back in; the machine's /root is untouched.
    """
    base = Path(sys.base_prefix).resolve()
    hidden = next((p for p in reversed(base.parents) if not p.stat().st_mode & 0o001), None)
    if hidden is None:
        return ""
    stage.mkdir()
    return (
        f"mount --bind {base} {stage} && mount -t tmpfs -o mode=755 tmpfs {hidden} && "
        f"mkdir -p {base} && mount --move {stage} {base}"
    )


def new_key(path: Path) -> Path:
    """A fresh ed25519 key pair; the public half's path."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path.with_suffix(".pub")


def fingerprint(public_key: Path) -> str:
    """`SHA256:…`, as `ssh-keygen -l` shows it (and as an operator compares it)."""
    shown = subprocess.run(
        ["ssh-keygen", "-l", "-f", str(public_key)], capture_output=True, text=True, check=True
    )
    return shown.stdout.split()[1]


def known_hosts_line(host: str, port: int, public_key: Path) -> str:
    return f"[{host}]:{port} {' '.join(public_key.read_text().split()[:2])}\n"


def checkout(target: Path) -> Path:
    """A copy of this checkout, as an operator's would be, for `source` in the deploy settings."""
    excludes = [f"--exclude={name}" for name in NOT_SHIPPED]
    subprocess.run(["rsync", "-a", *excludes, f"{ROOT}/", f"{target}/"], check=True)
    return target


def write_env(
    path: Path,
    *,
    database: str,
    bind: str,
    root: Path,
    models: str = "",
    redis: str = "redis://127.0.0.1:6379/0",
    extra: str = "",
) -> None:
    """The app's settings on one host: root-only, as `fab provision` leaves /etc/modelgate/env.

    The app logs to `LOG_FILE`, named here as docs/deploy.md says (`fab logs` reads it).
    `extra` is more `NAME=value` lines.
    """
    path.write_text(
        f'DATABASE_URL={database}\nREDIS_URL={redis}\nMODELS="{models}"\n'
        f"GUNICORN_BIND={bind}\nGUNICORN_WORKERS=2\nMODELGATE_ENV=development\n"
        f"SECRET_KEY={'s' * 40}\nJWT_SECRET_KEY={'j' * 40}\nTRUSTED_PROXIES=1\n"
        f"RATE_LIMIT_DEFAULT=100000/minute\nLOG_FILE={log_file(root)}\n{extra}"
    )
    path.chmod(0o600)


def log_file(root: Path) -> Path:
    """Where a test host's app writes its log (not the fabfile's old guess, shared/log/app.log)."""
    return root / "shared" / "log" / "api.json"


def write_settings(
    path: Path,
    ssh: dict,
    source: Path,
    hosts: dict[str, dict[str, str]],
    *,
    keep: int = 3,
    nginx: dict[str, str] | None = None,
) -> Path:
    """A deploy.toml for these hosts: `hosts` maps each to its root, bind and env_file."""
    lines = [
        "build_web = false",
        f'source = "{source}"',
        "[ssh]",
        f'user = "{ssh["user"]}"\nkey = "{ssh["key"]}"\nknown_hosts = "{ssh["known_hosts"]}"',
        f"port = {ssh['port']}",
        "[defaults]",
        f'python = "{sys.executable}"\nservice_user = "{SERVICE_USER}"',
        f'service = "process"\ninstall_requirements = false\nkeep = {keep}',
        "ready_timeout_s = 120",
        "[provision]",
        f'user = "{SERVICE_USER}"\npackages = []',
    ]
    if nginx:
        lines.append("[nginx]")
        lines += [f"{name} = {json.dumps(value)}" for name, value in nginx.items()]
    for host, values in hosts.items():
        lines.append(f'[hosts."{host}"]')
        lines += [f'{name} = "{value}"' for name, value in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def fab(
    settings: Path, *arguments: str, hosts: tuple[str, ...] = HOSTS
) -> subprocess.CompletedProcess[str]:
    fab_bin = Path(sys.executable).parent / "fab"
    started = time.monotonic()
    result = subprocess.run(
        [str(fab_bin), "-r", str(ROOT / "deploy"), "-H", ",".join(hosts), *arguments],
        env={**os.environ, "MODELGATE_DEPLOY": str(settings)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    print(f"fab {' '.join(arguments)} on {','.join(hosts)}: {time.monotonic() - started:.1f} s")
    return result


def output(result: subprocess.CompletedProcess[str]) -> str:
    """The end of what `fab` printed, for an assertion's message."""
    return result.stdout[-3000:] + result.stderr[-3000:]


def stop_app(root: Path) -> None:
    """Stop the gunicorn that the `process` service manager started in this deploy root."""
    pidfile = root / "shared" / "run" / "gunicorn.pid"
    with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
        pid = int(pidfile.read_text())
        os.kill(pid, signal.SIGTERM)
        for _ in range(300):  # gunicorn's graceful stop takes up to 20 s
            if not alive(pid):  # gone, or a zombie nobody reaped
                return
            time.sleep(0.1)

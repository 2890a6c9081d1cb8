"""A real nginx on the rendered site, for the nginx and deploy tests."""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
import requests

from deploy.nginx_site import Site, render

API, APP = "api.modelgate.test", "app.modelgate.test"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def self_signed(folder: Path) -> tuple[str, str]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={API}",
         "-addext", f"subjectAltName=DNS:{API},DNS:{APP}"],
        check=True, capture_output=True,
    )  # fmt: skip
    return str(cert), str(key)


def main_config(folder: Path, site_file: Path) -> Path:
    for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (folder / name).mkdir(exist_ok=True)
    config = folder / "nginx.conf"
    # As root, nginx's workers would run as nobody, who cannot enter pytest's 0700 folders
    # to spool a large request body; the test's workers stay the test's own user.
    user = "user root;\n" if os.geteuid() == 0 else ""
    config.write_text(
        f"""{user}pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 256; }}
http {{
    include /etc/nginx/mime.types;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    include {site_file};
}}
"""
    )
    return config


@contextlib.contextmanager
def run_nginx(site: Site, folder: Path) -> Iterator[None]:
    """`nginx -t`, then nginx in the foreground on `site` until the block ends (by its PID)."""
    if not Path(NGINX).exists():
        pytest.fail("nginx is not installed (.ci/run installs it)")
    config = main_config(folder, render(site, folder / "site"))
    checked = subprocess.run(
        [NGINX, "-t", "-c", str(config), "-p", str(folder)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stderr
    nginx = subprocess.Popen([NGINX, "-c", str(config), "-p", str(folder), "-g", "daemon off;"])
    try:
        https = f"https://{site.https_listen}/healthz"
        for _ in range(100):
            try:
                requests.get(https, headers={"Host": API}, verify=False, timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        yield
    finally:
        nginx.send_signal(signal.SIGQUIT)
        try:
            nginx.wait(timeout=10)
        except subprocess.TimeoutExpired:  # a connection still open: stop without waiting
            nginx.terminate()
            nginx.wait(timeout=10)


class RawAnswer(NamedTuple):
    status: int
    headers: dict[str, str]
    body: bytes


def send_raw(port: int, request: bytes, *, timeout: float = 5.0) -> RawAnswer:
    """Send `request` over TLS byte for byte and read one answer.

    No client library stands between: the bytes may be invalid UTF-8, and a body may stop
    short of its Content-Length (the answer must then come before the rest is sent).
    """
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=timeout) as plain,
        context.wrap_socket(plain, server_hostname=API) as tls,
    ):
        tls.sendall(request)
        answer = http.client.HTTPResponse(tls)  # type: ignore[arg-type]
        answer.begin()
        return RawAnswer(answer.status, dict(answer.getheaders()), answer.read())

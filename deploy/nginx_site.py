"""Render `nginx/` into a site for one deployment: domains, app hosts, certificate, origins.

The files in `nginx/` mark each setting as `@@NAME@@` (nginx's own `$variables` and
`${variables}` pass through untouched). `render(site, folder)` writes the site file and
its snippets; the fabfile installs the result, the tests run a real nginx on it. The
CORS origins are the app's `CORS_ORIGINS`, one exact `map` line each. The app hosts are
`snippets/upstreams.conf`, a file of their own: the fabfile marks a host `down` there
while it deploys to it (`set_down`), so nginx sends it nothing until it is ready again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from deploy.templates import fill

NGINX = Path(__file__).resolve().parent.parent / "nginx"
# How long nginx skips an app host after one failed connection (`fail_timeout`); the
# fabfile waits longer than this between hosts, so two are never skipped at once.
FAIL_TIMEOUT_S = 5
# What `POST /v1/files` may add around a file of FILE_MAX_BYTES: the multipart boundaries,
# part headers and form fields. nginx's own cap is above the app's, so the app decides.
MULTIPART_HEADROOM = 64 * 1024
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")
_SERVER_LINE = re.compile(r"^([ \t]*)server[ \t]+(\S+)([^;\n]*);", re.MULTILINE)


@dataclass(frozen=True)
class Site:
    api_domain: str
    app_domain: str
    upstreams: tuple[str, ...]  # "host:port" of each app host's gunicorn
    cert: str
    key: str
    web_root: str
    cors_origins: tuple[str, ...]
    access_log: str = "/var/log/nginx/modelgate.access.json"
    http_listen: str = "80"
    https_listen: str = "443"
    https_port_suffix: str = ""  # ":8443" when HTTPS is not on 443 (tests)
    ocsp_stapling: bool = False  # on only with a certificate from a real CA
    proxy_timeout_s: int = 120  # above INFERENCE_TIMEOUT_S: event streams are long
    max_body: str = "2m"
    file_max_bytes: int = 64 * 1024 * 1024  # the app's FILE_MAX_BYTES
    predict_max_bytes: int = 16 * 1024 * 1024  # the app's PREDICT_MAX_BYTES
    connections_per_ip: int = 64


def _cors_map(origins: tuple[str, ...]) -> str:
    lines = []
    for origin in origins:
        if not _ORIGIN.fullmatch(origin):
            raise ValueError(f"CORS origin {origin!r} must be scheme://host[:port], exactly")
        lines.append(f'    "{origin}" $http_origin;')
    return "\n".join(lines)


def upstream_server(address: str) -> str:
    """One app host's line in `snippets/upstreams.conf`, in rotation."""
    return f"server {address} max_fails=1 fail_timeout={FAIL_TIMEOUT_S}s;"


def upstream_states(text: str) -> dict[str, bool]:
    """Each host of an upstreams file and whether nginx may send to it (not `down`)."""
    return {
        match.group(2): "down" not in match.group(3).split()
        for match in _SERVER_LINE.finditer(text)
    }


def set_down(text: str, address: str, down: bool) -> str:
    """The upstreams file with `address` taken out of rotation (`down`) or put back."""
    if address not in upstream_states(text):
        raise ValueError(f"nginx's upstreams list no server {address}")

    def mark(match: re.Match[str]) -> str:
        indent, server, parameters = match.groups()
        if server != address:
            return match.group(0)
        kept = [word for word in parameters.split() if word != "down"]  # weight= etc. stay
        return f"{indent}server {' '.join([server, *kept, *(['down'] if down else [])])};"

    return _SERVER_LINE.sub(mark, text)


def values(site: Site, snippets: Path) -> dict[str, str]:
    return {
        "CORS_MAP": _cors_map(site.cors_origins),
        "UPSTREAM_SERVERS": "\n".join(upstream_server(host) for host in site.upstreams),
        "API_DOMAIN": site.api_domain,
        "APP_DOMAIN": site.app_domain,
        "CERT": site.cert,
        "KEY": site.key,
        "WEB_ROOT": site.web_root,
        "ACCESS_LOG": site.access_log,
        "HTTP_LISTEN": site.http_listen,
        "HTTPS_LISTEN": site.https_listen,
        "HTTPS_PORT_SUFFIX": site.https_port_suffix,
        "OCSP_STAPLING": "on" if site.ocsp_stapling else "off",
        "PROXY_TIMEOUT_S": str(site.proxy_timeout_s),
        "MAX_BODY": site.max_body,
        "MAX_UPLOAD": str(site.file_max_bytes + MULTIPART_HEADROOM),
        "MAX_PREDICT": str(site.predict_max_bytes + MULTIPART_HEADROOM),
        "CONNECTIONS_PER_IP": str(site.connections_per_ip),
        "SNIPPETS": str(snippets),
    }


def render(site: Site, folder: Path, snippets: Path | None = None) -> Path:
    """Write `modelgate.conf` and `snippets/` into `folder`; return the site file's path.

    `snippets` is where the snippets will live on the server (default: `folder/snippets`).
    """
    target_snippets = folder / "snippets"
    target_snippets.mkdir(parents=True, exist_ok=True)
    settings = values(site, snippets or target_snippets)
    for snippet in sorted((NGINX / "snippets").glob("*.conf")):
        (target_snippets / snippet.name).write_text(fill(snippet.read_text(), settings))
    site_file = folder / "modelgate.conf"
    site_file.write_text(fill((NGINX / "modelgate.conf").read_text(), settings))
    return site_file

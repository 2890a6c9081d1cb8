"""The web app (`web/dist`, built by Vite) served from the API's own origin under `make run`,
and the browser security headers on every answer of the app.

In production Nginx serves `web/dist` itself; this blueprint is for one-origin
development and the end-to-end tests. Hashed assets are cached for a year,
`index.html` never, and any path that is not a file gets `index.html` (the app's
router decides), except under `/v1/`, which this blueprint's routes never match: an
unknown API path stays the API's JSON 404, and an API path keeps its own `Allow` (a
catch-all GET there would add GET to every POST-only route's OPTIONS and turn a
malformed id on DELETE or PATCH into a 405).

The headers are nginx's (nginx/snippets/security-headers.conf), so gunicorn alone is
as strict as behind nginx, which must add each only where the app sent none, or it
comes twice. The one page with an inline script, Swagger UI at `/docs`, allows that
script by its hash.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re

from flask import Blueprint, Flask, Response, current_app, request, send_from_directory
from werkzeug.routing import PathConverter

from api.edge.errors import NotFound

blueprint = Blueprint("web", __name__)
YEAR = 365 * 24 * 3600
SCRIPTS = "script-src 'self'"
CONTENT_SECURITY_POLICY = (
    f"default-src 'self'; {SCRIPTS}; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
SWAGGER_UI_ENDPOINT = "api-docs.openapi_swagger_ui"  # flask-smorest's, at /docs
INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


class WebPathConverter(PathConverter):
    """`<web_path:name>`: a path that is not `v1` or under `v1/` (those are the API's)."""

    regex = "(?!v1(?:/|$))" + PathConverter.regex


def _dist() -> str:
    return str(current_app.config["WEB_DIST"])


@blueprint.get("/")
@blueprint.get("/<web_path:path>")
def app_shell(path: str = "") -> Response:
    dist = _dist()
    if path.startswith("assets/"):
        if not os.path.isfile(os.path.join(dist, path)):
            raise NotFound()
        response = send_from_directory(dist, path, max_age=YEAR)
        response.headers["Cache-Control"] = f"public, max-age={YEAR}, immutable"
        return response
    if path and os.path.isfile(os.path.join(dist, path)):
        return send_from_directory(dist, path, max_age=3600)
    response = send_from_directory(dist, "index.html", max_age=0)
    response.headers["Cache-Control"] = "no-cache"
    return response


def add_security_headers(response: Response) -> Response:
    """Give every answer nginx's security headers, unless its view set its own."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.endpoint == SWAGGER_UI_ENDPOINT:
        response.headers["Content-Security-Policy"] = _allow_inline_scripts(response)
    return response


def _allow_inline_scripts(page: Response) -> str:
    """The policy with the page's own inline scripts allowed by their sha256 (and no others)."""
    hashes = "".join(
        f" 'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"
        for script in INLINE_SCRIPT.findall(page.get_data(as_text=True))
    )
    return CONTENT_SECURITY_POLICY.replace(SCRIPTS, SCRIPTS + hashes, 1)


def init_app(app: Flask) -> None:
    """Add the security headers; serve the built app when `WEB_DIST` holds one."""
    app.after_request(add_security_headers)
    dist = app.config.get("WEB_DIST")
    if dist and os.path.isfile(os.path.join(dist, "index.html")):
        app.url_map.converters["web_path"] = WebPathConverter
        app.register_blueprint(blueprint)

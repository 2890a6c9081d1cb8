"""The web app (`web/dist`, built by Vite) served from the API's own origin under `make run`.

In production Nginx serves `web/dist` itself; this blueprint is for one-origin
development and the end-to-end tests. Hashed assets are cached for a year,
`index.html` never, and any path that is not a file gets `index.html` (the app's
router decides), except under `/v1/`, which stays the API's JSON 404.
"""

from __future__ import annotations

import os

from flask import Blueprint, Flask, Response, current_app, send_from_directory

from api.errors import NotFound

blueprint = Blueprint("web", __name__)
YEAR = 365 * 24 * 3600


def _dist() -> str:
    return str(current_app.config["WEB_DIST"])


@blueprint.get("/")
@blueprint.get("/<path:path>")
def app_shell(path: str = "") -> Response:
    if path.startswith("v1/") or path == "v1":
        raise NotFound()
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


def init_app(app: Flask) -> None:
    """Serve the built app when `WEB_DIST` holds one (nothing is registered otherwise)."""
    dist = app.config.get("WEB_DIST")
    if dist and os.path.isfile(os.path.join(dist, "index.html")):
        app.register_blueprint(blueprint)

"""`/healthz`: the process answers. `/readyz`: the database and (when configured) Redis answer.

Which dependency failed is detail for operators: `/readyz` names it only to
addresses in `OPERATOR_NETWORKS`; anyone else gets the status alone.
"""

from __future__ import annotations

from flask.views import MethodView

from api.edge.errors import ServiceUnavailable
from api.edge.validation import Blueprint
from api.health import schemas
from api.health.service import check_dependencies, check_upstreams
from api.observability.metrics import from_operator_network
from api.runtime.handlers.registry import handler_models

blueprint = Blueprint("health", __name__, description="Liveness and readiness probes.")


@blueprint.route("/healthz")
class Health(MethodView):
    @blueprint.response(200, schemas.HealthOut)
    def get(self) -> dict:
        """The process is alive."""
        return {"status": "ok"}


@blueprint.route("/readyz")
class Ready(MethodView):
    @blueprint.errors(503)
    @blueprint.response(200, schemas.ReadyOut)
    def get(self) -> dict:
        """Every dependency answers; 503 names the one that does not."""
        checks = check_dependencies()
        operator = from_operator_network()
        if any(state != "ok" for state in checks.values()):
            failed = ", ".join(name for name, state in checks.items() if state != "ok")
            raise ServiceUnavailable(
                f"Not ready: {failed} unreachable." if operator else "Not ready.",
                details={"checks": checks} if operator else {},
                headers={"Retry-After": "5"},
            )
        if not operator:
            return {"status": "ok"}
        handlers = handler_models()
        upstreams = check_upstreams()
        return {
            "status": "ok",
            "checks": checks,
            **({"models": handlers.states()} if handlers.entries else {}),
            **({"upstreams": upstreams} if upstreams else {}),
        }

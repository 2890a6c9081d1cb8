"""`/metrics`: every metric, summed across gunicorn workers, to operators' networks only.

The metrics themselves are defined in `api/observability/metrics.py`; this route also
refreshes `dependency_up` from the readiness checks at each scrape.
"""

from __future__ import annotations

import os

from flask import Blueprint, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)

from api.edge.errors import Forbidden
from api.health.service import check_dependencies, check_upstreams
from api.observability.metrics import DEPENDENCY_UP, from_operator_network

blueprint = Blueprint("metrics", __name__)


def _registry() -> CollectorRegistry:
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


@blueprint.get("/metrics")
def metrics() -> Response:
    """Expose every metric, summed across gunicorn workers (to operators' networks only)."""
    if not from_operator_network():
        raise Forbidden("Metrics are for operators.", code="operators_only")
    for dependency, state in check_dependencies().items():  # bounded by their timeouts
        DEPENDENCY_UP.labels(dependency).set(1 if state == "ok" else 0)
    for model_id, replicas in check_upstreams().items():  # upstream:MODEL:REPLICA URL
        for replica, state in replicas.items():
            DEPENDENCY_UP.labels(f"upstream:{model_id}:{replica}").set(1 if state == "ok" else 0)
    return Response(generate_latest(_registry()), mimetype=CONTENT_TYPE_LATEST)

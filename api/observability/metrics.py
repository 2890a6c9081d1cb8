"""Prometheus metrics (the `/metrics` endpoint that exposes them: `api/health/metrics.py`).

Under gunicorn, `PROMETHEUS_MULTIPROC_DIR` is set by `gunicorn.conf.py` before the
app is imported, so every worker writes its samples there and `/metrics` adds them
up across workers. Every label has a bounded set of values, whatever clients send:
routes are labelled by their template (`/v1/tokens/<id>`), never by the raw path,
unmatched paths share one label, and a method outside HTTP's standard few is
`OTHER`. `/metrics` answers only addresses in `OPERATOR_NETWORKS` (403 otherwise);
Nginx keeps it off the public site as well.
"""

from __future__ import annotations

import ipaddress

from flask import current_app, request
from prometheus_client import (
    Counter,
    Gauge,
    Histogram,
)

UNMATCHED_ROUTE = "<unmatched>"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

REQUEST_DURATION = Histogram(
    "http_server_request_duration_seconds",
    "Time to answer an HTTP request, by method, route template and status.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
REQUESTS = Counter(
    "http_server_requests",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)


def observe_request(method: str, route: str | None, status: int, seconds: float) -> None:
    labels = (method if method in METHODS else "OTHER", route or UNMATCHED_ROUTE, str(status))
    REQUESTS.labels(*labels).inc()
    REQUEST_DURATION.labels(*labels).observe(seconds)


def from_operator_network() -> bool:
    """True when the caller's address (after ProxyFix) is in `OPERATOR_NETWORKS`."""
    try:
        address = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return False
    return any(
        address in ipaddress.ip_network(network, strict=False)
        for network in current_app.config["OPERATOR_NETWORKS"]
    )


RATE_LIMIT_REJECTIONS = Counter(
    "rate_limit_rejections", "Requests refused with 429, by route template.", ["route"]
)
DEPENDENCY_UP = Gauge(
    "dependency_up",
    "1 when the dependency answered the last check (made at each scrape), else 0.",
    ["dependency"],
    multiprocess_mode="mostrecent",
)
RATE_LIMIT_DEGRADED = Gauge(
    "rate_limit_storage_degraded",
    "1 while rate limits run on per-process memory because Redis is unreachable.",
    multiprocess_mode="max",
)


def count_rate_limit_rejection(_limit: object) -> None:
    """Flask-Limiter `on_breach` hook: count the 429 (returns None to keep the answer)."""
    from flask import request

    rule = request.url_rule.rule if request.url_rule is not None else UNMATCHED_ROUTE
    RATE_LIMIT_REJECTIONS.labels(rule).inc()

"""Observability: trace ids, JSON logs with one access line per request, Prometheus metrics."""

from __future__ import annotations

import logging
import time

from flask import Flask, Response, current_app, g, request

from api.extensions import limiter
from api.observability import metrics, tracing
from api.observability.logs import ACCESS_LOGGER, configure_logging

access_log = logging.getLogger(ACCESS_LOGGER)


def _start_timer() -> None:
    g.started_ns = time.perf_counter_ns()


def log_request(response: Response) -> Response:
    """Write the one access line and count the request in the metrics."""
    started = g.get("started_ns") or time.perf_counter_ns()
    duration_ns = time.perf_counter_ns() - started
    route = request.url_rule.rule if request.url_rule is not None else None
    metrics.observe_request(request.method, route, response.status_code, duration_ns / 1e9)
    # Flask-Limiter keeps its fallback state privately; mirror it (and ours) for alerting.
    degraded = getattr(limiter, "_storage_dead", False) or current_app.extensions.get(
        "budget_degraded"  # set by api.access.budget
    )
    metrics.RATE_LIMIT_DEGRADED.set(1 if degraded else 0)
    access_log.info(
        "%s %s %s",
        request.method,
        request.path,
        response.status_code,
        extra={
            "event.kind": "event",
            "event.category": "web",
            "http.request.method": request.method,
            "url.path": request.path,
            "http.route": route,
            "http.response.status_code": response.status_code,
            "event.duration": duration_ns,
            "client.ip": request.remote_addr,
            "user_agent.original": request.user_agent.string or None,
            "user.id": g.get("user_id"),
            "token.id": getattr(g.get("principal"), "token_id", None),
        },
    )
    return response


def init_app(app: Flask) -> None:
    configure_logging(
        service_name=app.config["SERVICE_NAME"],
        fmt=app.config["LOG_FORMAT"],
        level=app.config["LOG_LEVEL"],
        log_file=app.config["LOG_FILE"],
    )
    tracing.init_app(app)
    app.before_request(_start_timer)
    app.after_request(log_request)

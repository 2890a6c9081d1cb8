"""Dependency checks for the readiness probe."""

from __future__ import annotations

import logging

import redis
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from api.extensions import db, redis_client
from api.runtime.registry import models
from api.runtime.upstreams.oip import oip_upstreams

log = logging.getLogger(__name__)


def check_dependencies() -> dict[str, str]:
    """Return {"database": "ok"|"unreachable", "redis": ...}; Redis only when configured."""
    checks = {"database": "ok"}
    try:
        db.session.execute(text("SELECT 1"))
    except SQLAlchemyError as error:
        db.session.rollback()
        log.warning("readiness: database unreachable", extra={"error.type": type(error).__name__})
        checks["database"] = "unreachable"
    client = redis_client.client
    if client is not None:
        try:
            client.ping()
            checks["redis"] = "ok"
        except redis.RedisError as error:
            log.warning("readiness: redis unreachable", extra={"error.type": type(error).__name__})
            checks["redis"] = "unreachable"
    return checks


def check_upstreams() -> dict[str, dict[str, str]]:
    """Each upstream model's replicas: {model: {replica URL: ok|unreachable|breaker open...}}.

    `GET {base}/models` (OpenAI) or `GET {base}/v2/models/{model}/ready` (OIP) on each
    (2 s at most each); a failed check counts against the replica's breaker.
    An upstream that is down does not make this host unready.
    """
    states = {upstream.id: upstream.client.check() for upstream in models.upstreams()}
    return states | {model_id: oip.check() for model_id, oip in oip_upstreams().items()}

"""Schemas of the probes."""

from __future__ import annotations

from marshmallow import Schema, fields, validate


class HealthOut(Schema):
    status = fields.String(required=True, validate=validate.OneOf(["ok"]))


class ReadyOut(HealthOut):
    checks = fields.Dict(
        keys=fields.String(),
        values=fields.String(validate=validate.OneOf(["ok", "unreachable"])),
        metadata={"description": "Each dependency's state; shown to OPERATOR_NETWORKS only."},
    )
    models = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        metadata={
            "description": "Each handler model's state (ready, loading, down, failed: why); "
            "a model that is not ready does not make the host unready. OPERATOR_NETWORKS only."
        },
    )
    upstreams = fields.Dict(
        keys=fields.String(),
        values=fields.Dict(keys=fields.String(), values=fields.String()),
        metadata={
            "description": "Each upstream model's replicas and their state (ok, unreachable, "
            "breaker open, breaker half-open); a replica that is down does not make the host "
            "unready. OPERATOR_NETWORKS only."
        },
    )

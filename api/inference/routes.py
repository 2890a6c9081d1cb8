"""`/v1/models`, `/v1/embeddings`, `/v1/completions`: the OpenAI-compatible inference API."""

from __future__ import annotations

from api.inference import schemas
from api.inference.registry import models
from api.ratelimits import api_rate_limit
from api.security import authenticate
from api.usage.metering import metered
from api.validation import Blueprint

blueprint = Blueprint("inference", __name__, url_prefix="/v1", description="Models.")


@blueprint.route("/models", methods=["GET"])
@authenticate()
@metered("models")
@api_rate_limit
@blueprint.response(200, schemas.ModelListOut)
def list_models():
    """The models this server has loaded."""
    return {"object": "list", "data": models.list()}

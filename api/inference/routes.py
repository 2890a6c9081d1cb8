"""`/v1/models` and `/v1/embeddings` (text generation is in `completions.py`)."""

from __future__ import annotations

from api.access.budget import api_rate_limit
from api.access.ratelimits import inference_slot
from api.access.security import authenticate, current_principal
from api.edge.validation import Blueprint
from api.extensions import db
from api.inference import openai_format as fmt
from api.inference import schemas, service
from api.runtime import cache
from api.runtime.handlers.registry import handler_models, model_info, ready_infos
from api.runtime.registry import models
from api.runtime.upstreams.oip import oip_upstreams
from api.usage.metering import meter, metered

blueprint = Blueprint("inference", __name__, url_prefix="/v1", description="Models.")


@blueprint.route("/models", methods=["GET"])
@authenticate()
@metered("models")
@api_rate_limit
@blueprint.response(200, schemas.ModelListOut)
def list_models():
    """The models this server serves: loaded here, in a handler process that is ready, or
    upstream (task `oip` for an Open Inference Protocol upstream, device `upstream`)."""
    oip = [upstream.info for upstream in oip_upstreams().values()]
    return {"object": "list", "data": [*models.list(), *ready_infos(handler_models()), *oip]}


@blueprint.route("/models/<string(maxlength=64):model_id>", methods=["GET"])
@authenticate()
@metered("models")
@api_rate_limit
@blueprint.errors(404, 503)
@blueprint.response(200, schemas.ModelOut)
def retrieve_model(model_id: str):
    """One model, as `GET /v1/models` lists it (OpenAI's retrieve model); a handler model
    adds its declared `schema` (inputs, outputs, batch size, units)."""
    handlers = handler_models()
    if model_id in handlers:
        return model_info(handlers, model_id)
    upstream = oip_upstreams().get(model_id)
    if upstream is not None:
        return upstream.info
    return models.get(model_id).info


@blueprint.route("/embeddings", methods=["POST"])
@authenticate(scope="embed")
@metered("embeddings")
@api_rate_limit
@blueprint.errors(404, 422, 502, 503, 504)
@blueprint.arguments(schemas.EmbeddingIn, example={"input": ["A frog prince", "A royal amphibian"]})
@blueprint.response(200, schemas.EmbeddingListOut)
def create_embeddings(body: dict):
    """Embed one text or a list of texts (batched with concurrent requests, cached in Redis)."""
    texts = body["input"]
    user_id = current_principal().user_id
    model_id = models.serve(body["model"], task="embedding").model.id
    meter().model = model_id
    found = cache.cached_embeddings(user_id, model_id, texts)
    missing = [i for i in range(len(texts)) if i not in found]
    if missing:
        db.session.commit()  # give the connection back while the model runs
        with inference_slot(user_id):
            result = service.embed_texts(model_id, [texts[i] for i in missing])
        for i, vector, tokens in zip(missing, result.vectors, result.token_counts, strict=True):
            found[i] = (vector, tokens)
        cache.store_embeddings(user_id, model_id, [(texts[i], *found[i]) for i in missing])
    vectors = [found[i][0] for i in range(len(texts))]
    tokens = sum(found[i][1] for i in range(len(texts)))
    meter().tokens_in = tokens
    return fmt.embedding_body(model_id, vectors, tokens, body["encoding_format"])

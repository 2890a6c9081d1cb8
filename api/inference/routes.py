"""`/v1/models`, `/v1/embeddings`, `/v1/completions`: the OpenAI-compatible inference API."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from flask import Response, stream_with_context

from api.errors import APIError
from api.extensions import db
from api.inference import cache, schemas, service
from api.inference import openai_format as fmt
from api.inference.registry import models
from api.ratelimits import api_rate_limit, inference_slot
from api.security import authenticate, current_principal
from api.usage.metering import Meter, meter, metered
from api.usage.service import save_history
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


@blueprint.route("/embeddings", methods=["POST"])
@authenticate(scope="embed")
@metered("embeddings")
@api_rate_limit
@blueprint.arguments(schemas.EmbeddingIn)
@blueprint.response(200, schemas.EmbeddingListOut)
def create_embeddings(body: dict):
    """Embed one text or a list of texts (batched with concurrent requests, cached in Redis)."""
    texts = body["input"]
    user_id = current_principal().user.id
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


@blueprint.route("/completions", methods=["POST"])
@authenticate(scope="generate")
@metered("completions")
@api_rate_limit
@blueprint.arguments(schemas.CompletionIn)
@blueprint.response(200, schemas.CompletionOut)
def create_completion(body: dict):
    """Continue a prompt; `stream: true` answers server-sent events ending in `[DONE]`."""
    options = {
        "max_tokens": body["max_tokens"],
        "temperature": body["temperature"],
        "top_p": body["top_p"],
        "seed": body["seed"],
        "stop": body["stop"] or (),
    }
    prompt = body["prompt"][0]
    if body["stream"]:
        include_usage = bool((body["stream_options"] or {}).get("include_usage"))
        return _stream_completion(body["model"], prompt, options, include_usage)
    db.session.commit()  # give the connection back while the model runs
    with inference_slot(current_principal().user.id):
        result = service.complete(body["model"], prompt, **options)
    usage = meter()
    usage.model, usage.tokens_in, usage.tokens_out = (
        result.model,
        result.prompt_tokens,
        result.completion_tokens,
    )
    _keep(usage, prompt, result.text, result.finish_reason)
    return fmt.completion_body(
        fmt.completion_id(),
        result.model,
        result.text,
        result.finish_reason,
        usage_=fmt.usage(result.prompt_tokens, result.completion_tokens),
    )


def _keep(usage: Meter, prompt: str, text: str, finish_reason: str | None) -> None:
    save_history(
        user_id=usage.user_id,
        token_id=usage.token_id,
        model=usage.model or "",
        prompt=prompt,
        completion=text,
        finish_reason=finish_reason,
        prompt_tokens=usage.tokens_in,
        completion_tokens=usage.tokens_out,
        trace_id=usage.trace_id,  # streams end after the request's trace context
    )


def _stream_completion(
    model_id: str | None, prompt: str, options: dict, include_usage: bool
) -> Response:
    """Start the generation (errors still get a status), then stream its chunks as SSE."""
    held = contextlib.ExitStack()  # released when the stream ends, not when this returns
    held.enter_context(inference_slot(current_principal().user.id, stream=True))
    cancel = threading.Event()
    try:
        stream = service.stream_completion(model_id, prompt, cancel=cancel, **options)
    except BaseException:
        held.close()
        raise
    usage = meter()
    usage.model, usage.tokens_in = stream.model, stream.prompt_tokens
    cid = fmt.completion_id()
    db.session.commit()  # hold no database transaction open while the stream runs

    def events() -> Iterator[str]:
        pieces: list[str] = []
        finished = False
        try:
            for chunk in stream:
                pieces.append(chunk.text)
                usage.tokens_out = stream.completion_tokens
                if chunk.text or chunk.finish_reason:
                    body = fmt.completion_body(cid, stream.model, chunk.text, chunk.finish_reason)
                    yield fmt.sse(body)
            if include_usage:  # OpenAI's closing chunk: no choices, the totals
                totals = fmt.usage(stream.prompt_tokens, stream.completion_tokens)
                yield fmt.sse(fmt.completion_body(cid, stream.model, usage_=totals, choices=False))
            finished = True
            yield fmt.sse("[DONE]")
        except APIError as error:  # after the 200: report in-band, as OpenAI does
            usage.status = error.status
            yield fmt.sse({"error": {"code": error.code, "message": error.message}})
            yield fmt.sse("[DONE]")
        finally:
            cancel.set()  # the client went away, or we are done: stop generating
            stream.close()
            held.close()
            usage.tokens_out = stream.completion_tokens
            reason = stream.finish_reason if finished else stream.finish_reason or "cancelled"
            _keep(usage, prompt, "".join(pieces), reason)

    return Response(
        stream_with_context(events()),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )

"""OpenAI compatibility, as the official `openai` client sees it, against live gunicorn.

Models (listed and retrieved), embeddings (float, base64, token ids), completions
(one prompt, a list, streamed), chat (plain, streamed with the usage chunk), OpenAI's
rate-limit headers, and every error class a client can meet: AuthenticationError,
PermissionDeniedError, NotFoundError, BadRequestError naming its `param` (and the
reason in its message), and RateLimitError whose `retry-after` the client honours.
"""

from __future__ import annotations

import time

import openai
import pytest

from api import create_app
from api.config import TestConfig
from api.extensions import db
from tests.tokens.conftest import make_account


@pytest.fixture(scope="module")
def server(openai_server):
    """The session's live server (tests/conftest.py), shared with the Responses modules."""
    return openai_server[0]


@pytest.fixture(scope="module")
def tokens(request, openai_server):
    """Three tokens of this module's own user: every scope, embed only, and one limited to
    2 calls in 3 s."""
    app = create_app(
        TestConfig(SQLALCHEMY_DATABASE_URI=openai_server[1], TOKEN_CREATE_LIMIT="9/hour")
    )
    module = request.module.__name__.rsplit(".", 1)[-1].replace("_", "-")
    account = make_account(app, f"openai-{module}@example.org")
    minted = {
        "all": account.mint("all", scopes=["embed", "generate", "usage", "batch"]),
        "embed": account.mint("embed only", scopes=["embed"]),
        "slow": account.mint("slow", scopes=["generate"], rate_limit="2/3 seconds"),
    }
    with app.app_context():
        db.engine.dispose()
    return {name: created["token"] for name, created in minted.items()}


def client(server: str, token: str, **options) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server}/v1", api_key=token, max_retries=0, **options)


def test_models_and_embeddings(server, tokens):
    api = client(server, tokens["all"])
    assert {model.id for model in api.models.list()} == {"all-minilm-l6-v2", "storyteller"}
    floats = api.embeddings.create(
        model="all-minilm-l6-v2", input=["A frog.", "A prince."], encoding_format="float"
    )
    packed = api.embeddings.create(model="all-minilm-l6-v2", input=["A frog.", "A prince."])
    assert [len(item.embedding) for item in floats.data] == [384, 384]
    # The client asks for base64 by default and decodes it: the same vectors.
    for a, b in zip(floats.data, packed.data, strict=True):
        assert a.embedding == pytest.approx(b.embedding, abs=1e-6)
    assert floats.usage.prompt_tokens > 0


def test_retrieve_a_model(server, tokens):
    api = client(server, tokens["all"])
    model = api.models.retrieve("all-minilm-l6-v2")
    assert (model.id, model.object, model.owned_by) == ("all-minilm-l6-v2", "model", "modelgate")
    assert model.created > 0 and model.model_extra["task"] == "embedding"
    with pytest.raises(openai.NotFoundError) as missing:
        api.models.retrieve("gpt-4o")
    assert missing.value.code == "model_not_found"


def test_embed_token_ids_as_langchain_sends_them(server, tokens):
    from tokenizers import Tokenizer

    from api.runtime.specs import locate_minilm

    tokenizer = Tokenizer.from_file(f"{locate_minilm()}/tokenizer.json")
    tokenizer.no_padding()
    texts = ["Once upon a time a frog.", "A princess lost her golden ball."]
    ids = [tokenizer.encode(text, add_special_tokens=False).ids for text in texts]
    api = client(server, tokens["all"])
    by_text = api.embeddings.create(model="all-minilm-l6-v2", input=texts)
    by_ids = api.embeddings.create(model="all-minilm-l6-v2", input=ids)
    for a, b in zip(by_text.data, by_ids.data, strict=True):
        assert a.embedding == pytest.approx(b.embedding, abs=1e-5)
    with pytest.raises(openai.UnprocessableEntityError) as unknown:
        api.embeddings.create(model="all-minilm-l6-v2", input=[[99999]])
    assert unknown.value.param == "input" and "input[0]" in unknown.value.body["message"]


def test_rate_limit_headers_under_openais_names(server, tokens):
    raw = client(server, tokens["all"]).models.with_raw_response.list()
    assert int(raw.headers["x-ratelimit-limit-requests"]) == 10000
    assert 0 <= int(raw.headers["x-ratelimit-remaining-requests"]) < 10000
    assert raw.headers["x-ratelimit-reset-requests"].endswith("s")


def test_completions_single_list_and_stream(server, tokens):
    api = client(server, tokens["all"])
    one = api.completions.create(model="storyteller", prompt="Once upon a time", max_tokens=8)
    assert len(one.choices) == 1 and one.choices[0].text and one.usage.completion_tokens > 0
    many = api.completions.create(
        model="storyteller", prompt=["A king", "A frog"], max_tokens=4, n=2, seed=3
    )
    assert [choice.index for choice in many.choices] == [0, 1, 2, 3]
    assert many.choices[0].text != many.choices[1].text  # seeds differ per repeat
    streamed = "".join(
        chunk.choices[0].text
        for chunk in api.completions.create(
            model="storyteller", prompt="Once upon a time", max_tokens=12, seed=7, stream=True
        )
    )
    whole = api.completions.create(
        model="storyteller", prompt="Once upon a time", max_tokens=12, seed=7
    )
    assert streamed == whole.choices[0].text


def test_chat_plain_and_streamed_with_usage(server, tokens):
    api = client(server, tokens["all"])
    messages = [
        {"role": "system", "content": "A tale of the brothers Grimm."},
        {"role": "user", "content": "Once upon a time a frog"},
    ]
    reply = api.chat.completions.create(
        model="storyteller", messages=messages, max_tokens=10, seed=5
    )
    assert reply.object == "chat.completion"
    assert reply.choices[0].message.role == "assistant" and reply.choices[0].message.content
    assert reply.choices[0].finish_reason in {"stop", "length"}
    chunks = list(
        api.chat.completions.create(
            model="storyteller",
            messages=messages,
            max_completion_tokens=10,
            seed=5,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == reply.choices[0].message.content
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == reply.usage.total_tokens


def test_each_error_class_a_client_meets(server, tokens):
    with pytest.raises(openai.AuthenticationError) as denied:
        client(server, "mg_" + "A" * 46).models.list()
    assert denied.value.code == "invalid_token"

    with pytest.raises(openai.PermissionDeniedError) as scoped:
        client(server, tokens["embed"]).chat.completions.create(
            model="storyteller", messages=[{"role": "user", "content": "Hi"}]
        )
    assert scoped.value.code == "insufficient_scope"

    api = client(server, tokens["all"])
    with pytest.raises(openai.NotFoundError) as missing:
        api.embeddings.create(model="no-such-model", input="hello")
    assert missing.value.code == "model_not_found" and missing.value.param == "model"

    complete = api.completions.create
    for call, param in [
        (lambda: complete(model="storyteller", prompt="x", temperature=5), "temperature"),
        (lambda: complete(model="storyteller", prompt="x", logprobs=3), "logprobs"),
        (lambda: complete(model="storyteller", prompt="x", echo=True), "echo"),
        (
            lambda: api.chat.completions.create(
                model="storyteller",
                messages=[{"role": "user", "content": "x"}],
                response_format={"type": "json_object"},
            ),
            "response_format",
        ),
    ]:  # fmt: skip
        with pytest.raises(openai.BadRequestError) as bad:
            call()
        assert bad.value.param == param and bad.value.type == "invalid_request_error"
        assert bad.value.body["message"].startswith(param)  # newer SDKs show only the message


def test_rate_limits_carry_a_retry_after_the_client_honours(server, tokens):
    impatient = client(server, tokens["slow"])
    for _ in range(2):
        impatient.completions.create(model="storyteller", prompt="x", max_tokens=1)
    with pytest.raises(openai.RateLimitError) as limited:
        impatient.completions.create(model="storyteller", prompt="x", max_tokens=1)
    retry_after = int(limited.value.response.headers["retry-after"])
    assert 1 <= retry_after <= 3

    patient = openai.OpenAI(base_url=f"{server}/v1", api_key=tokens["slow"], max_retries=3)
    start = time.monotonic()
    done = patient.completions.create(model="storyteller", prompt="x", max_tokens=1)
    assert done.choices and time.monotonic() - start >= 0.5  # it waited, then succeeded

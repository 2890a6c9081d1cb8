"""Calls real OpenAI clients make: retrieve a model, embed token ids, read the rate-limit
headers under OpenAI's names, and see the reason of a 400 in its message."""

from __future__ import annotations

import os
import re

import pytest
from tokenizers import Tokenizer

from api.access import budget
from api.runtime.specs import locate_minilm
from tests.auth.conftest import bearer
from tests.tokens.conftest import make_account

MODELS = "all-minilm-l6-v2,storyteller"
SENTENCE = "The frog prince's golden ball fell into the well, 3 times!"


@pytest.fixture
def served(make_app):
    app = make_app(MODELS=MODELS, INFERENCE_PER_USER=32)
    account = make_account(app)
    return account, bearer(account.mint()["token"])


@pytest.fixture(scope="module")
def minilm_ids():
    """The ids MiniLM's own tokenizer makes of a text, without special tokens."""
    tokenizer = Tokenizer.from_file(os.path.join(locate_minilm(), "tokenizer.json"))
    tokenizer.no_padding()
    return lambda text: tokenizer.encode(text, add_special_tokens=False).ids


def embed(account, headers, body):
    return account.client.post("/v1/embeddings", headers=headers, json=body)


def test_retrieve_a_model_as_the_list_shows_it(served):
    account, headers = served
    listed = account.client.get("/v1/models", headers=headers).get_json()["data"]
    for model in listed:
        response = account.client.get(f"/v1/models/{model['id']}", headers=headers)
        assert response.status_code == 200
        assert response.get_json() == model
        assert {"id", "object", "created", "owned_by"} <= model.keys()
        assert model["object"] == "model"


@pytest.mark.parametrize("model_id", ["gpt-4o", "all-minilm-l6-v2.", "x" * 64])
def test_retrieving_an_unknown_model_is_404_model_not_found(served, model_id):
    account, headers = served
    response = account.client.get(f"/v1/models/{model_id}", headers=headers)
    assert response.status_code == 404
    error = response.get_json()["error"]
    assert error["code"] == "model_not_found" and error["param"] == "model"


def test_retrieving_a_model_needs_credentials(served):
    account, _ = served
    assert account.client.get("/v1/models/all-minilm-l6-v2").status_code == 401


def test_token_ids_embed_as_their_text(served, minilm_ids):
    account, headers = served
    other = "A royal amphibian."
    texts = embed(account, headers, {"input": [SENTENCE, other]}).get_json()
    one = embed(account, headers, {"input": minilm_ids(SENTENCE)})
    many = embed(account, headers, {"input": [minilm_ids(SENTENCE), minilm_ids(other)]})
    assert one.status_code == many.status_code == 200, one.get_json()
    assert one.get_json()["data"][0]["embedding"] == pytest.approx(
        texts["data"][0]["embedding"], abs=1e-5
    )
    for by_ids, by_text in zip(many.get_json()["data"], texts["data"], strict=True):
        assert by_ids["index"] == by_text["index"]
        assert by_ids["embedding"] == pytest.approx(by_text["embedding"], abs=1e-5)
    assert many.get_json()["usage"] == texts["usage"]


def test_token_ids_hit_the_cache_of_their_text(make_app, redis_url, redis_db, minilm_ids):
    app = make_app(MODELS=MODELS, REDIS_URL=redis_url, RATELIMIT_STORAGE_URI=redis_url)
    account = make_account(app)
    headers = bearer(account.mint()["token"])
    text = embed(account, headers, {"input": "a cached sentence"}).get_json()
    ids = embed(account, headers, {"input": [minilm_ids("a cached sentence")]}).get_json()
    assert len(redis_db.keys(f"mg:emb:{account.user_id}:all-minilm-l6-v2:*")) == 1
    assert ids["data"][0]["embedding"] == text["data"][0]["embedding"]


@pytest.mark.parametrize(
    ("value", "status", "message"),
    [
        ([[]], 400, "input[0]: Give 1 to 8192 token ids"),
        ([-1], 400, "input[0]: Give 1 to 8192 token ids"),
        ([[1.5]], 400, "input[0]: Give 1 to 8192 token ids"),
        ([[2000], [True]], 400, "input[1]: Give 1 to 8192 token ids"),
        ([[2000]] * 65, 400, "input: Give 1 to 64 token-id lists."),
        (["a frog", [2000]], 400, "input: Give a string, a list of strings, a list of token ids"),
        ([[2000], [30522]], 422, "input[1]: Token id 30522 is not in the vocabulary"),
        ([2000] * 300, 422, "input[0] is 302 tokens"),
        ([2377, 2075], 422, "input[0]: all-minilm-l6-v2's tokenizer never writes"),  # play ##ing
    ],
)
def test_bad_token_ids_name_the_input(served, value, status, message):
    account, headers = served
    response = embed(account, headers, {"input": value})
    assert response.status_code == status, response.get_json()
    error = response.get_json()["error"]
    assert error["param"] == "input"
    assert error["message"].startswith(message), error["message"]


def test_token_ids_for_an_unknown_model_are_404(served):
    account, headers = served
    response = embed(account, headers, {"input": [2000], "model": "storyteller"})
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "model_not_found"


def test_rate_limit_headers_also_carry_openais_names(served):
    account, headers = served
    response = account.client.get("/v1/models", headers=headers)
    assert response.headers["x-ratelimit-limit-requests"] == response.headers["X-RateLimit-Limit"]
    remaining = response.headers["x-ratelimit-remaining-requests"]
    assert remaining == response.headers["X-RateLimit-Remaining"]
    assert re.fullmatch(r"(\d+h)?(\d+m)?\d+s", response.headers["x-ratelimit-reset-requests"])
    assert "x-ratelimit-limit-tokens" not in response.headers  # no token budget exists


@pytest.mark.parametrize(
    ("seconds", "written"),
    [
        (0, "0s"),
        (1, "1s"),
        (59, "59s"),
        (60, "1m0s"),
        (360, "6m0s"),
        (3723, "1h2m3s"),
        (86400, "24h0m0s"),
    ],
)
def test_resets_are_written_as_openai_writes_them(seconds, written):
    assert budget.go_duration(seconds) == written


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"input": "hi", "dimensions": 128}, "dimensions: Not supported by modelgate"),
        ({"input": "hi", "encoding_format": "int8"}, "encoding_format: Must be one of"),
        ({}, "input: Missing data for required field."),
    ],
)
def test_a_400_says_which_field_and_why_in_its_message(served, body, message):
    account, headers = served
    response = embed(account, headers, body)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["message"].startswith(message), error["message"]
    assert error["param"] == message.split(":")[0] and error["param"] in error["details"]

"""Finding 8: the embedding cache is per user, so a hit only ever reveals the caller's inputs."""

from __future__ import annotations

import hashlib

from tests.auth.conftest import bearer
from tests.tokens.conftest import make_account

TEXT = "the secret that only Alice embedded"


def _embed(account, token: str) -> dict:
    response = account.client.post("/v1/embeddings", headers=bearer(token), json={"input": TEXT})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_one_users_inputs_are_never_anothers_cache_hit(limited_app, redis_db):
    app = limited_app(MODELS="all-minilm-l6-v2")
    alice, bob = make_account(app, "alice@example.org"), make_account(app, "bob@example.org")
    alice_token, bob_token = alice.mint()["token"], bob.mint()["token"]
    first = _embed(alice, alice_token)
    assert len(redis_db.keys("mg:emb:*")) == 1
    _embed(alice, alice_token)
    assert len(redis_db.keys("mg:emb:*")) == 1  # Alice's repeat: her own hit
    bobs = _embed(bob, bob_token)
    keys = redis_db.keys("mg:emb:*")
    assert len(keys) == 2  # Bob's call missed and ran the model: a cache entry of his own
    assert bobs["data"][0]["embedding"] == first["data"][0]["embedding"]
    plain = hashlib.sha256(TEXT.encode()).hexdigest()
    assert all(plain not in key for key in keys)  # keys do not let anyone test guesses

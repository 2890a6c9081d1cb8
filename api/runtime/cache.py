"""The embedding cache: vectors in Redis by user, model and a keyed hash of the text.

Scoped per user: a hit is only ever the caller's own earlier input, so timing a
call tells nobody what anybody else embedded. The text's hash is an HMAC under
the app's secret, so Redis keys do not let anyone test guesses at inputs either.
Best effort by design: a miss, an error or no Redis at all only means the text
is embedded again; nothing here can fail a request. Vectors are stored as their
float32 bytes, so a cached vector is identical to a fresh one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from array import array

import redis
from flask import current_app

from api.extensions import redis_client

KEY = "mg:emb:{}:{}:{}"


def _key(user_id: int, model_id: str, text: str) -> str:
    secret = current_app.config["SECRET_KEY"].encode()
    digest = hmac.new(secret, text.encode(), hashlib.sha256).hexdigest()
    return KEY.format(user_id, model_id, digest)


def _pack(vector: list[float], tokens: int) -> str:
    return f"{tokens}:" + base64.b64encode(array("f", vector).tobytes()).decode()


def _unpack(value: str) -> tuple[list[float], int]:
    tokens, packed = value.split(":", 1)
    return array("f", base64.b64decode(packed)).tolist(), int(tokens)


def cached_embeddings(
    user_id: int, model_id: str, texts: list[str]
) -> dict[int, tuple[list[float], int]]:
    """The user's cached (vector, tokens) of each text found, by its index in `texts`."""
    client = redis_client.client
    if client is None or not current_app.config.get("EMBEDDING_CACHE_TTL_S"):
        return {}
    try:
        values = client.mget([_key(user_id, model_id, text) for text in texts])
    except redis.RedisError as error:
        redis_client.report_failure("embedding cache", error)
        return {}
    return {index: _unpack(str(value)) for index, value in enumerate(values) if value}


def store_embeddings(
    user_id: int, model_id: str, items: list[tuple[str, list[float], int]]
) -> None:
    client = redis_client.client
    ttl = current_app.config.get("EMBEDDING_CACHE_TTL_S")
    if client is None or not ttl or not items:
        return
    try:
        with client.pipeline(transaction=False) as pipe:
            for text, vector, tokens in items:
                pipe.set(_key(user_id, model_id, text), _pack(vector, tokens), ex=ttl)
            pipe.execute()
    except redis.RedisError as error:
        redis_client.report_failure("embedding cache", error)

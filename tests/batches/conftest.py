"""Batch fixtures: an account with a token, helpers to upload a file and create a batch."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.auth.conftest import bearer
from tests.tokens.conftest import make_account


@dataclass
class Caller:
    app: Flask
    client: FlaskClient
    headers: dict[str, str]
    token_id: int

    def upload(self, data: bytes | str | list, **form) -> object:
        if isinstance(data, list):
            data = "\n".join(json.dumps(line) for line in data)
        if isinstance(data, str):
            data = data.encode()
        return self.client.post(
            "/v1/files",
            headers=self.headers,
            data={"purpose": "batch", "file": (io.BytesIO(data), "input.jsonl"), **form},
            content_type="multipart/form-data",
        )

    def create(self, file_id: str, endpoint: str = "/v1/embeddings", **extra) -> object:
        return self.client.post(
            "/v1/batches",
            headers=self.headers,
            json={
                "input_file_id": file_id,
                "endpoint": endpoint,
                "completion_window": "24h",
                **extra,
            },
        )


def make_caller(app: Flask, email: str, scopes=("embed", "generate", "batch"), **extra) -> Caller:
    account = make_account(app, email)
    minted = account.mint("batches", scopes=scopes, **extra)
    return Caller(app, app.test_client(), bearer(minted["token"]), minted["id"])


@pytest.fixture
def caller(app) -> Caller:
    return make_caller(app, "files@example.org")


def embedding_line(custom_id: str, text: str = "A frog by the well.", **body) -> dict:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/embeddings",
        "body": {"input": text, **body},
    }

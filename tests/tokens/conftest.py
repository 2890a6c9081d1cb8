"""Token fixtures: a signed-in user who can mint tokens."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.auth.conftest import bearer, login, make_verified_user


@dataclass
class Account:
    app: Flask
    client: FlaskClient
    session: dict[str, str]
    user_id: int

    def mint(self, name: str = "laptop", scopes=("batch", "embed", "generate"), **extra) -> dict:
        response = self.client.post(
            "/v1/tokens", headers=self.session, json={"name": name, "scopes": list(scopes), **extra}
        )
        assert response.status_code == 201, response.get_json()
        return response.get_json()


def make_account(app: Flask, email: str = "dev@example.org") -> Account:
    user_id = make_verified_user(app, email)
    client = app.test_client()
    return Account(app, client, bearer(login(client, email)), user_id)


@pytest.fixture
def account(app) -> Account:
    return make_account(app)


@pytest.fixture
def redis_account(make_app, redis_url, redis_db) -> Account:
    return make_account(make_app(REDIS_URL=redis_url, RATELIMIT_STORAGE_URI=redis_url))

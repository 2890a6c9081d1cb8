"""Finding 3 of issue 22: files and batches take the `batch` scope, on SQLite and PostgreSQL.

A token without it reaches no file and no batch of its account (it reads, downloads,
cancels and deletes nothing); creating a batch also takes the scope of its endpoint.
"""

from __future__ import annotations

import io

import pytest

from tests.auth.conftest import bearer
from tests.batches.conftest import Caller, embedding_line
from tests.tokens.conftest import make_account


def _owner_and_other(app, other_scopes: list[str]) -> tuple[Caller, Caller]:
    """Two tokens of one account: one that may run batches, and one with `other_scopes`."""
    account = make_account(app, "owner@example.org")
    owner = account.mint("owner", scopes=["batch", "embed"])
    other = account.mint("other", scopes=other_scopes)
    return (
        Caller(app, account.client, bearer(owner["token"]), owner["id"]),
        Caller(app, account.client, bearer(other["token"]), other["id"]),
    )


def _every_route(file_id: str, batch_id: str) -> list[tuple[str, str, dict]]:
    upload = {
        "data": {"purpose": "batch", "file": (io.BytesIO(b'{"custom_id": "x"}'), "in.jsonl")},
        "content_type": "multipart/form-data",
    }
    create = {
        "json": {
            "input_file_id": file_id,
            "endpoint": "/v1/embeddings",
            "completion_window": "24h",
        }
    }
    return [
        ("GET", "/v1/files", {}),
        ("POST", "/v1/files", upload),
        ("GET", f"/v1/files/{file_id}", {}),
        ("GET", f"/v1/files/{file_id}/content", {}),
        ("DELETE", f"/v1/files/{file_id}", {}),
        ("GET", "/v1/batches", {}),
        ("POST", "/v1/batches", create),
        ("GET", f"/v1/batches/{batch_id}", {}),
        ("POST", f"/v1/batches/{batch_id}/cancel", {}),
    ]


@pytest.mark.parametrize("scopes", [["usage"], ["embed", "generate", "usage"]])
def test_a_token_without_the_batch_scope_reaches_no_file_or_batch(app, scopes):
    owner, other = _owner_and_other(app, scopes)
    file_id = owner.upload([embedding_line("a")]).get_json()["id"]
    batch = owner.create(file_id).get_json()
    assert batch["status"] == "validating"
    before = owner.client.get(f"/v1/files/{file_id}/content", headers=owner.headers).data

    for method, path, request in _every_route(file_id, batch["id"]):
        response = other.client.open(path, method=method, headers=other.headers, **request)
        assert response.status_code == 403, (method, path, response.get_json())
        error = response.get_json()["error"]
        assert error["code"] == "insufficient_scope" and error["type"] == "permission_error"
        assert error["details"] == {"required_scope": "batch"}
        assert "'batch'" in error["message"]

    # Nothing changed: the file is there with its bytes, the batch runs, no file or batch added.
    content = owner.client.get(f"/v1/files/{file_id}/content", headers=owner.headers)
    assert content.status_code == 200 and content.data == before
    files = owner.client.get("/v1/files", headers=owner.headers).get_json()["data"]
    assert [f["id"] for f in files] == [file_id]
    batches = owner.client.get("/v1/batches", headers=owner.headers).get_json()["data"]
    assert [(b["id"], b["status"]) for b in batches] == [(batch["id"], "validating")]


def test_a_batch_and_embed_token_uses_every_route(app):
    owner, _ = _owner_and_other(app, ["usage"])
    uploaded = owner.upload([embedding_line("a")])
    assert uploaded.status_code == 200, uploaded.get_json()
    file_id = uploaded.get_json()["id"]
    assert owner.client.get("/v1/files", headers=owner.headers).status_code == 200
    assert owner.client.get(f"/v1/files/{file_id}", headers=owner.headers).status_code == 200
    content = owner.client.get(f"/v1/files/{file_id}/content", headers=owner.headers)
    assert content.status_code == 200

    created = owner.create(file_id)
    assert created.status_code == 200, created.get_json()
    batch_id = created.get_json()["id"]
    assert owner.client.get("/v1/batches", headers=owner.headers).status_code == 200
    assert owner.client.get(f"/v1/batches/{batch_id}", headers=owner.headers).status_code == 200
    cancelled = owner.client.post(f"/v1/batches/{batch_id}/cancel", headers=owner.headers)
    assert cancelled.status_code == 200 and cancelled.get_json()["status"] == "cancelling"

    spare = owner.upload([embedding_line("b")]).get_json()["id"]
    deleted = owner.client.delete(f"/v1/files/{spare}", headers=owner.headers)
    assert deleted.status_code == 200 and deleted.get_json()["deleted"] is True


def test_a_batch_only_token_cannot_create_a_batch_for_an_endpoint_it_lacks(app):
    account = make_account(app, "owner@example.org")
    minted = account.mint("files", scopes=["batch"])
    caller = Caller(app, account.client, bearer(minted["token"]), minted["id"])
    file_id = caller.upload([embedding_line("a")]).get_json()["id"]
    for endpoint, scope in (("/v1/embeddings", "embed"), ("/v1/chat/completions", "generate")):
        refused = caller.create(file_id, endpoint=endpoint)
        assert refused.status_code == 403, refused.get_json()
        error = refused.get_json()["error"]
        assert error["code"] == "insufficient_scope"
        assert error["details"] == {"required_scope": scope}
    assert caller.client.get("/v1/batches", headers=caller.headers).get_json()["data"] == []
    # The login session carries every scope.
    assert account.client.get("/v1/files", headers=account.session).status_code == 200
    assert account.client.get("/v1/batches", headers=account.session).status_code == 200

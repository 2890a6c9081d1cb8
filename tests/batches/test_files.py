"""`/v1/files`: upload, list, read and delete, with the limits a user meets and another's 404s."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

from api.db_types import utcnow
from api.files.service import purge_expired_files
from tests.batches.conftest import embedding_line, make_caller

LINES = [embedding_line(f"r{i}") for i in range(3)]


def test_upload_list_read_delete(caller):
    uploaded = caller.upload(LINES)
    assert uploaded.status_code == 200, uploaded.get_json()
    body = uploaded.get_json()
    assert body["object"] == "file" and body["purpose"] == "batch"
    assert body["filename"] == "input.jsonl" and body["status"] == "processed"
    assert body["expires_at"] - body["created_at"] == 30 * 86400  # the default expiry
    file_id = body["id"]

    assert caller.client.get(f"/v1/files/{file_id}", headers=caller.headers).get_json() == body
    content = caller.client.get(f"/v1/files/{file_id}/content", headers=caller.headers)
    assert content.status_code == 200 and content.data.decode().count("\n") == 2

    deleted = caller.client.delete(f"/v1/files/{file_id}", headers=caller.headers)
    assert deleted.get_json() == {"id": file_id, "object": "file", "deleted": True}
    again = caller.client.get(f"/v1/files/{file_id}", headers=caller.headers)
    assert again.status_code == 404 and again.get_json()["error"]["code"] == "file_not_found"


def test_content_of_a_file_deleted_meanwhile_is_a_404(app, caller):
    # A DELETE from another worker commits between this read of the row and the open of
    # its bytes: what is left is a row this request already read and no bytes. The fuzzer,
    # with two workers, found that as a 500.
    file_id = caller.upload(LINES).get_json()["id"]
    Path(app.config["FILES_DIR"], "files", file_id).unlink()
    content = caller.client.get(f"/v1/files/{file_id}/content", headers=caller.headers)
    assert content.status_code == 404, content.get_json()
    assert content.get_json()["error"]["code"] == "file_not_found"


def test_content_is_the_uploaded_bytes(caller):
    data = "\n".join(f'{{"custom_id": "é{i}"}}' for i in range(5)).encode()
    file_id = caller.upload(data).get_json()["id"]
    content = caller.client.get(f"/v1/files/{file_id}/content", headers=caller.headers)
    assert content.data == data
    assert content.headers["Content-Type"] == "application/octet-stream"


def test_list_pages_newest_first(caller):
    ids = [caller.upload(LINES).get_json()["id"] for _ in range(3)]
    first = caller.client.get("/v1/files?limit=2", headers=caller.headers).get_json()
    assert [f["id"] for f in first["data"]] == ids[::-1][:2] and first["has_more"]
    rest = caller.client.get(
        f"/v1/files?limit=2&after={first['last_id']}", headers=caller.headers
    ).get_json()
    assert [f["id"] for f in rest["data"]] == [ids[0]] and not rest["has_more"]
    oldest = caller.client.get("/v1/files?order=asc&limit=1", headers=caller.headers).get_json()
    assert oldest["data"][0]["id"] == ids[0]


def test_another_user_sees_nothing(app, caller):
    file_id = caller.upload(LINES).get_json()["id"]
    stranger = make_caller(app, "stranger@example.org")
    for method, path in (
        ("get", f"/v1/files/{file_id}"),
        ("get", f"/v1/files/{file_id}/content"),
        ("delete", f"/v1/files/{file_id}"),
    ):
        answer = getattr(stranger.client, method)(path, headers=stranger.headers)
        assert answer.status_code == 404, (method, path)
    assert stranger.client.get("/v1/files", headers=stranger.headers).get_json()["data"] == []
    assert caller.client.get(f"/v1/files/{file_id}", headers=caller.headers).status_code == 200


def test_bad_uploads_name_the_field(caller):
    wrong_purpose = caller.upload(LINES, purpose="fine-tune")
    assert wrong_purpose.status_code == 400
    assert wrong_purpose.get_json()["error"]["param"] == "purpose"
    no_file = caller.client.post(
        "/v1/files",
        headers=caller.headers,
        data={"purpose": "batch"},
        content_type="multipart/form-data",
    )
    assert no_file.status_code == 400 and no_file.get_json()["error"]["param"] == "file"
    as_json = caller.client.post("/v1/files", headers=caller.headers, json={"purpose": "batch"})
    assert as_json.status_code == 415
    for data, why in ((b"\xff\xfe\x00bad", "UTF-8"), (b"", "empty")):
        answer = caller.upload(data)
        assert answer.status_code == 422, why
        assert answer.get_json()["error"]["param"] == "file"
    short = caller.upload(
        LINES, **{"expires_after[anchor]": "created_at", "expires_after[seconds]": "60"}
    )
    assert short.status_code == 400
    assert short.get_json()["error"]["param"] == "expires_after[seconds]"
    nul_name = caller.client.post(
        "/v1/files",
        headers=caller.headers,
        data={"purpose": "batch", "file": (io.BytesIO(b"{}"), "bad\x00name.jsonl")},
        content_type="multipart/form-data",
    )
    assert nul_name.status_code == 400 and nul_name.get_json()["error"]["param"] == "file"
    assert caller.client.get("/v1/files", headers=caller.headers).get_json()["data"] == []


def test_size_cap_and_quota_lose_nothing(make_app):
    app = make_app(FILE_MAX_BYTES=4000, FILES_QUOTA_BYTES=3000)
    caller = make_caller(app, "quota@example.org")
    too_big = caller.upload(b'{"a": 1}\n' * 600)
    assert too_big.status_code == 413
    kept = caller.upload(b'{"a": 1}\n' * 200)
    assert kept.status_code == 200
    over = caller.upload(b'{"a": 1}\n' * 200)
    assert over.status_code == 413
    assert over.get_json()["error"]["code"] == "storage_quota_exceeded"
    listed = caller.client.get("/v1/files", headers=caller.headers).get_json()["data"]
    assert [f["id"] for f in listed] == [kept.get_json()["id"]]
    files = list(Path(app.config["FILES_DIR"], "files").iterdir())
    assert len(files) == 1  # the refused upload left no bytes behind


def test_a_file_of_file_max_bytes_fits_and_one_byte_more_does_not(make_app):
    app = make_app(FILE_MAX_BYTES=4000)
    caller = make_caller(app, "exact@example.org")
    exact = (b'{"a": 1}\n' * 445)[:3999] + b"\n"
    assert len(exact) == 4000
    fits = caller.upload(exact)  # the multipart body around it is larger than 4000 bytes
    assert fits.status_code == 200 and fits.get_json()["bytes"] == 4000
    over = caller.upload(exact + b"\n")
    assert over.status_code == 413 and "file" in over.get_json()["error"]["details"]
    listed = caller.client.get("/v1/files", headers=caller.headers).get_json()["data"]
    assert [f["bytes"] for f in listed] == [4000]


def test_expired_files_are_purged(app, caller):
    short = caller.upload(
        LINES, **{"expires_after[anchor]": "created_at", "expires_after[seconds]": "3600"}
    ).get_json()
    long = caller.upload(LINES).get_json()
    with app.app_context():
        assert purge_expired_files(utcnow()) == 0
        assert purge_expired_files(utcnow() + timedelta(hours=2)) == 1
    assert caller.client.get(f"/v1/files/{short['id']}", headers=caller.headers).status_code == 404
    assert caller.client.get(f"/v1/files/{long['id']}", headers=caller.headers).status_code == 200
    assert not Path(app.config["FILES_DIR"], "files", short["id"]).exists()


def test_upload_size_limit_is_separate_from_json_bodies(caller):
    # A 1.5 MB upload passes (FILE_MAX_BYTES) where a JSON body that size is refused.
    big = b'{"x": "' + b"a" * 1_500_000 + b'"}\n'
    assert caller.upload(big).status_code == 200
    huge_json = caller.client.post(
        "/v1/batches", headers=caller.headers, data=big, content_type="application/json"
    )
    assert huge_json.status_code == 413

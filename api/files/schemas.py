"""Schemas of the files endpoints, and the OpenAI file object they answer with."""

from __future__ import annotations

from typing import Any

from flask_smorest.fields import Upload
from marshmallow import Schema, ValidationError, fields, validate
from werkzeug.datastructures import FileStorage

from api.edge.guards import string_problem
from api.files.models import StoredFile

FILE_ID_PATTERN = "^file-[A-Za-z0-9]{1,36}$"
MIN_EXPIRY_S, MAX_EXPIRY_S = 3600, 30 * 86400


def unix(moment: Any) -> int | None:
    return None if moment is None else int(moment.timestamp())


def file_object(row: StoredFile) -> dict[str, Any]:
    """The file as OpenAI's API shows it."""
    return {
        "id": row.id,
        "object": "file",
        "bytes": row.bytes,
        "created_at": unix(row.created_at),
        "expires_at": unix(row.expires_at),
        "filename": row.filename,
        "purpose": row.purpose,
        "status": "processed",
        "status_details": None,
    }


class UploadedFile(Upload):
    """A file part of a multipart body."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> FileStorage:
        if not isinstance(value, FileStorage):
            raise ValidationError("Send the file as a multipart file part.")
        problem = string_problem(value.filename or "")
        if problem:
            raise ValidationError(f"Its file name: {problem}")
        return value


class FileUploadIn(Schema):
    file = UploadedFile(required=True, metadata={"description": "JSONL, one request per line."})
    purpose = fields.String(
        required=True,
        validate=validate.OneOf(["batch"]),
        metadata={"description": "Only `batch`: the input of a batch."},
    )
    # No load_default: a multipart field has no null, so the document must not offer one.
    expires_anchor = fields.String(
        data_key="expires_after[anchor]", validate=validate.OneOf(["created_at"])
    )
    expires_seconds = fields.Integer(
        data_key="expires_after[seconds]",
        validate=validate.Range(min=MIN_EXPIRY_S, max=MAX_EXPIRY_S),
        metadata={"description": "Seconds after `created_at` (default 30 days)."},
    )


class FileOut(Schema):
    id = fields.String()
    object = fields.String(validate=validate.OneOf(["file"]))
    bytes = fields.Integer()
    created_at = fields.Integer()
    expires_at = fields.Integer(allow_none=True)
    filename = fields.String()
    purpose = fields.String(validate=validate.OneOf(["batch", "batch_output"]))
    status = fields.String(validate=validate.OneOf(["processed"]))
    status_details = fields.String(allow_none=True)


class PageArgs(Schema):
    after = fields.String(load_default=None, validate=validate.Length(min=1, max=64))
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))
    order = fields.String(load_default="desc", validate=validate.OneOf(["asc", "desc"]))


class FileListArgs(PageArgs):
    purpose = fields.String(load_default=None, validate=validate.OneOf(["batch", "batch_output"]))


class PageOut(Schema):
    """OpenAI's list envelope; a subclass says what `data` holds."""

    object = fields.String(validate=validate.OneOf(["list"]))
    first_id = fields.String(allow_none=True)
    last_id = fields.String(allow_none=True)
    has_more = fields.Boolean()


class FileListOut(PageOut):
    data = fields.List(fields.Nested(FileOut))


class FileDeletedOut(Schema):
    id = fields.String()
    object = fields.String(validate=validate.OneOf(["file"]))
    deleted = fields.Boolean()

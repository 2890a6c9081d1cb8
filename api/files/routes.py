"""`/v1/files`: upload batch inputs, list, read and delete files (OpenAI's Files API).

An API token needs the `batch` scope for every route here.
"""

from __future__ import annotations

from flask import Response

from api.access.budget import api_rate_limit
from api.access.security import authenticate, current_principal
from api.edge.paging import list_object
from api.edge.validation import Blueprint
from api.files import schemas, service
from api.files.storage import read_chunks

blueprint = Blueprint("files", __name__, url_prefix="/v1/files", description="Files.")


@blueprint.route("", methods=["POST"])
@authenticate(scope="batch")
@api_rate_limit
@blueprint.errors(413, 422)
@blueprint.arguments(schemas.FileUploadIn, location="multipart")
@blueprint.response(200, schemas.FileOut)
def upload_file(form: dict):
    """Upload a JSONL file of batch requests (multipart: `file`, `purpose=batch`)."""
    upload = form["file"]
    row = service.create_file(
        user_id=current_principal().user_id,
        source=upload.stream,
        filename=upload.filename or "",
        purpose=form["purpose"],
        expires_in_s=form.get("expires_seconds"),
    )
    return schemas.file_object(row)


@blueprint.route("", methods=["GET"])
@authenticate(scope="batch")
@blueprint.errors(404)
@blueprint.arguments(schemas.FileListArgs, location="query")
@blueprint.response(200, schemas.FileListOut)
def list_files(args: dict):
    """The user's files, newest first (`after` a file id for the next page)."""
    rows, more = service.list_files(
        current_principal().user_id,
        purpose=args["purpose"],
        after=args["after"],
        order=args["order"],
        limit=args["limit"],
    )
    return list_object([schemas.file_object(row) for row in rows], more)


@blueprint.route("/<string(maxlength=64):file_id>", methods=["GET"])
@authenticate(scope="batch")
@blueprint.errors(404)
@blueprint.response(200, schemas.FileOut)
def get_file(file_id: str):
    """One file's details."""
    return schemas.file_object(service.find_file(current_principal().user_id, file_id))


@blueprint.route("/<string(maxlength=64):file_id>", methods=["DELETE"])
@authenticate(scope="batch")
@api_rate_limit
@blueprint.errors(404, 409)
@blueprint.response(200, schemas.FileDeletedOut)
def delete_file(file_id: str):
    """Delete a file (409 while a batch still reads it)."""
    service.delete_file(current_principal().user_id, file_id)
    return {"id": file_id, "object": "file", "deleted": True}


@blueprint.route("/<string(maxlength=64):file_id>/content", methods=["GET"])
@authenticate(scope="batch")
@blueprint.errors(404)
@blueprint.response(200, content_type="application/octet-stream")
def file_content(file_id: str):
    """The file's bytes (JSONL)."""
    row, source = service.open_file(current_principal().user_id, file_id)

    def stream():
        with source:
            yield from read_chunks(source)

    return Response(
        stream(),
        mimetype="application/octet-stream",
        headers={
            "Content-Length": str(row.bytes),
            "Content-Disposition": f'attachment; filename="{row.id}.jsonl"',
        },
    )

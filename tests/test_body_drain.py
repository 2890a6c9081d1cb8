"""A call refused before its body is read still reads that body before answering.

Behind nginx, an answer sent while the body is still arriving ends in a reset socket:
nginx's 502, and the host out of rotation for its fail_timeout (tests/nginx).
"""

from __future__ import annotations

import io

from werkzeug.test import EnvironBuilder


def _call(app, path: str, body: bytes, content_type: str) -> tuple[str, int]:
    environ = EnvironBuilder(
        path=path, method="POST", data=body, content_type=content_type
    ).get_environ()
    stream = io.BytesIO(body)
    environ["wsgi.input"] = stream
    status: list[str] = []
    b"".join(app(environ, lambda s, h, e=None: status.append(s)))
    return status[0], stream.tell()


def test_a_predict_refused_for_its_credential_has_read_its_body(app):
    body = b"--x\r\nContent-Disposition: form-data; name=image; filename=a.png\r\n\r\n"
    body += b"x" * (3 * 1024 * 1024) + b"\r\n--x--\r\n"
    status, read = _call(
        app, "/v1/models/none-here/predict", body, "multipart/form-data; boundary=x"
    )
    assert status.startswith("401")
    assert read == len(body)


def test_a_body_over_its_cap_is_refused_unread(app):
    body = b"{" + b" " * (2 * 1024 * 1024) + b"}"  # over MAX_BODY_BYTES (1 MB)
    status, read = _call(app, "/v1/embeddings", body, "application/json")
    assert status.startswith("413")
    assert read == 0

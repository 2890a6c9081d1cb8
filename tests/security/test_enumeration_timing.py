"""Finding 6: forgot-password and resend-verification cost the same for any address.

Both do their work off the request path, so the request itself runs no SQL for
either kind of address, and their times agree.
"""

from __future__ import annotations

import statistics
import threading
import time

import pytest
from sqlalchemy import event

from api.extensions import db
from api.process import background
from tests.auth.conftest import make_verified_user

KNOWN, UNKNOWN = "known@example.org", "nobody@example.org"


@pytest.mark.parametrize("path", ["/v1/auth/forgot-password", "/v1/auth/resend-verification"])
def test_known_and_unknown_addresses_cost_the_same(app, path):
    make_verified_user(app, KNOWN)
    with app.app_context():
        from api.auth.models import User

        unverified = db.session.get(User, make_verified_user(app, "unverified@example.org"))
        unverified.email_verified_at = None
        db.session.commit()
        engine = db.engine
    client = app.test_client()
    request_thread = threading.get_ident()
    on_request_thread: list[str] = []

    def record(conn, cursor, statement, *args):
        if threading.get_ident() == request_thread:
            on_request_thread.append(statement)

    def timed(email: str) -> float:
        start = time.perf_counter()
        response = client.post(path, json={"email": email})
        elapsed = time.perf_counter() - start
        assert response.status_code == 202
        background.wait_idle()
        return elapsed

    event.listen(engine, "before_cursor_execute", record)
    try:
        timed(KNOWN), timed(UNKNOWN)  # warm both paths
        on_request_thread.clear()
        known = [timed(KNOWN if path.endswith("password") else "unverified@example.org")]
        unknown = [timed(UNKNOWN)]
        assert on_request_thread == []  # neither answer waited on the database
        known += [timed(KNOWN) for _ in range(10)]
        unknown += [timed(UNKNOWN) for _ in range(10)]
    finally:
        event.remove(engine, "before_cursor_execute", record)
    ratio = statistics.median(known) / statistics.median(unknown)
    assert 0.5 < ratio < 2, (statistics.median(known), statistics.median(unknown))

"""Finding 7: no bound parameter (hashes, tokens, prompts) ever reaches a log line."""

from __future__ import annotations

from sqlalchemy import text

from api.extensions import db

SECRET = "$argon2id$v=19$m=19456,t=2,p=1$c2VjcmV0LXNhbHQ$do-not-log-this-hash"


def test_a_failing_query_logs_its_sql_but_never_its_parameters(make_app, log_lines):
    app = make_app()

    @app.post("/v1/boom")
    def boom():
        db.session.execute(text("SELECT * FROM no_such_table WHERE secret = :s"), {"s": SECRET})
        return {}

    response = app.test_client().post("/v1/boom", json={})
    assert response.status_code == 500
    assert SECRET not in response.get_data(as_text=True)
    lines = log_lines()
    failure = [line for line in lines if line.get("error.type")]
    assert failure, lines
    assert "no_such_table" in failure[0]["error.message"]  # still useful to an operator
    assert all(SECRET not in str(line) for line in lines)

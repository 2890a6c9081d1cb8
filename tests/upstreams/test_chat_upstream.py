"""Chat and completions through modelgate from an OpenAI-compatible upstream that streams.

The upstream is a second modelgate serving the `storyteller` model under gunicorn (a
real OpenAI-compatible server with real server-sent events; no vLLM, llama.cpp or
Ollama installs on this machine without compiling, docs/decisions.md). The gateway in
front of it names it `story-up=upstream:openai:...`. The official `openai` client gets
the same answers through the gateway as directly, streams arrive event by event, calls
are metered with the upstream's token counts, and the upstream's key never shows.
"""

from __future__ import annotations

import time

import openai
import psycopg
import pytest
import requests

from api import create_app
from api.config import TestConfig as Config
from api.extensions import db
from tests.conftest import _libpq
from tests.services import free_port, gunicorn
from tests.tokens.conftest import make_account
from tests.tokens.test_live import mint_token

CHAT = [
    {"role": "system", "content": "A tale of the brothers Grimm."},
    {"role": "user", "content": "Once upon a time a frog"},
]


DEAD = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there


@pytest.fixture
def stack(tmp_path, live_database, redis_url, redis_db):
    upstream_key = _token(live_database, "upstream-operator@example.org")  # the upstream's key
    token, _, _ = mint_token(live_database)  # the gateway user's token
    common = {
        "DATABASE_URL": live_database,
        "REDIS_URL": redis_url,
        "RATE_LIMIT_DEFAULT": "100000/minute",
        "GUNICORN_THREADS": "8",
    }
    (tmp_path / "up").mkdir()
    (tmp_path / "gw").mkdir()
    with gunicorn({**common, "MODELS": "storyteller"}, tmp_path / "up", workers=1) as up:
        env = {
            **common,
            # A replica that refuses every connection comes first: calls move on from it.
            "MODELS": f"story-up=upstream:openai:{DEAD}|{up}/v1 model=storyteller "
            "task=text-generation timeout_s=60 key_env=STORY_KEY",
            "STORY_KEY": upstream_key,
        }
        with gunicorn(env, tmp_path / "gw", workers=2) as gateway:
            yield gateway, token, up, upstream_key, tmp_path


def _token(database_url: str, email: str) -> str:
    """A token of another verified user, in the live database."""
    app = create_app(Config(SQLALCHEMY_DATABASE_URI=database_url))
    token = make_account(app, email).mint()["token"]
    with app.app_context():
        db.engine.dispose()
    return token


def _rows(database_url: str, model: str) -> list[tuple]:
    """The model's usage rows in the order the calls ended: each gunicorn worker flushes its
    own spool, so the ids follow the flushes, not the calls."""
    with psycopg.connect(_libpq(database_url)) as conn:
        return conn.execute(
            "SELECT endpoint, status, tokens_in, tokens_out, trace_id FROM inference_records "
            "WHERE model = %s ORDER BY created_at, id",
            (model,),
        ).fetchall()


def _wait_for_rows(database_url: str, model: str, count: int, timeout: float = 30.0) -> list:
    deadline = time.monotonic() + timeout
    rows = _rows(database_url, model)
    while len(rows) < count and time.monotonic() < deadline:
        time.sleep(0.2)
        rows = _rows(database_url, model)
    return rows


def _timed(stream) -> tuple[list[str | None], list, list[float]]:
    """(content deltas, chunks, arrival times) of a chat stream."""
    deltas, chunks, arrivals = [], [], []
    for chunk in stream:
        arrivals.append(time.monotonic())
        chunks.append(chunk)
        if chunk.choices:
            deltas.append(chunk.choices[0].delta.content)
    return deltas, chunks, arrivals


def test_openai_client_gets_the_upstreams_chat_through_modelgate(stack, live_database):
    gateway, token, up, upstream_key, tmp_path = stack
    direct = openai.OpenAI(base_url=f"{up}/v1", api_key=upstream_key, max_retries=0)
    through = openai.OpenAI(base_url=f"{gateway}/v1", api_key=token, max_retries=0)
    ask = {"messages": CHAT, "max_tokens": 24, "temperature": 0, "seed": 7}

    expected = direct.chat.completions.create(model="storyteller", **ask)
    got = through.chat.completions.create(model="story-up", **ask)
    assert got.model == "story-up"
    assert got.choices[0].message.content == expected.choices[0].message.content
    assert got.choices[0].message.content.strip()
    assert got.choices[0].finish_reason == expected.choices[0].finish_reason
    assert got.usage.prompt_tokens == expected.usage.prompt_tokens > 0
    assert got.usage.completion_tokens == expected.usage.completion_tokens > 0

    text = through.completions.create(
        model="story-up", prompt="Once upon a time", max_tokens=12, temperature=0, seed=3
    )
    same = direct.completions.create(
        model="storyteller", prompt="Once upon a time", max_tokens=12, temperature=0, seed=3
    )
    assert text.choices[0].text == same.choices[0].text and text.usage == same.usage

    want, _, _ = _timed(direct.chat.completions.create(model="storyteller", stream=True, **ask))
    deltas, chunks, arrivals = _timed(
        through.chat.completions.create(model="story-up", stream=True, **ask)
    )
    assert deltas == want and "".join(d or "" for d in deltas).strip()
    assert all(chunk.usage is None for chunk in chunks)  # not asked for: left out
    distinct = len({round(t, 3) for t in arrivals})
    spread = arrivals[-1] - arrivals[0]
    print(f"\nstream: {len(arrivals)} events, {distinct} distinct arrivals over {spread:.3f}s")
    assert distinct > len(arrivals) // 2 and spread > 0.01  # one by one, not in one read

    _, counted, _ = _timed(
        through.chat.completions.create(
            model="story-up", stream=True, stream_options={"include_usage": True}, **ask
        )
    )
    assert counted[-1].usage.completion_tokens == expected.usage.completion_tokens

    anonymous = requests.post(f"{gateway}/v1/chat/completions", json=ask, timeout=10)
    assert anonymous.status_code == 401
    # /v1/responses on the upstream model: its chat, streamed upstream, answered whole here.
    said = {"input": "Once upon a time", "temperature": 0, "max_output_tokens": 24}
    answered = through.responses.create(model="story-up", **said)
    assert answered.output_text == direct.responses.create(model="storyteller", **said).output_text
    assert answered.output_text.strip() and answered.usage.output_tokens > 0

    rows = _wait_for_rows(live_database, "story-up", 5)
    assert rows[4][:2] == ("responses", 200) and rows[4][3] == answered.usage.output_tokens
    rows = rows[:4]
    tokens = (expected.usage.prompt_tokens, expected.usage.completion_tokens)
    assert [(endpoint, status, (t_in, t_out)) for endpoint, status, t_in, t_out, _ in rows] == [
        ("chat_completions", 200, tokens),
        ("completions", 200, (same.usage.prompt_tokens, same.usage.completion_tokens)),
        ("chat_completions", 200, tokens),
        ("chat_completions", 200, tokens),
    ]
    # The trace id went upstream with each call: the upstream's rows carry the same ids.
    # The upstream writes its rows in its own time: wait for them as for ours.
    ours = {row[4] for row in rows}
    deadline = time.monotonic() + 30
    upstream_traces = {row[4] for row in _rows(live_database, "storyteller")}
    while not ours <= upstream_traces and time.monotonic() < deadline:
        time.sleep(0.2)
        upstream_traces = {row[4] for row in _rows(live_database, "storyteller")}
    assert ours <= upstream_traces

    ready = requests.get(f"{gateway}/readyz", timeout=10)
    replicas = ready.json()["upstreams"]["story-up"]
    assert replicas[f"{up}/v1"] == "ok" and replicas[DEAD] in ("unreachable", "breaker open")
    seen = ready.text + requests.get(f"{gateway}/metrics", timeout=10).text
    seen += (tmp_path / "gw" / "app.log").read_text()
    seen += (tmp_path / "gw" / "gunicorn.stderr").read_text()
    assert upstream_key not in seen


def test_a_client_that_leaves_mid_stream_stops_the_upstream(stack, live_database):
    gateway, token, _, _, _ = stack
    ask = {"model": "story-up", "messages": CHAT, "max_tokens": 200, "stream": True, "seed": 11}

    def call(events: int | None) -> None:
        response = requests.post(
            f"{gateway}/v1/chat/completions",
            json=ask,
            headers={"Authorization": f"Bearer {token}"},
            stream=True,
            timeout=60,
        )
        assert response.status_code == 200
        lines = []
        for line in response.iter_lines():
            if line:
                lines.append(line)
            if events is not None and len(lines) >= events:
                break
        assert lines and all(line.startswith(b"data: ") for line in lines)
        response.close()  # read to the end, or the client goes away after a few events

    call(None)  # the whole story for this seed: how long it is
    whole = _wait_for_rows(live_database, "storyteller", 1)[0][3]
    call(3)
    rows = _wait_for_rows(live_database, "storyteller", 2, timeout=60)
    print(f"\nwhole stream: {whole} tokens upstream; client left after 3 events: {rows[1][3]}")
    assert whole > 50
    assert rows[1][3] < whole  # the upstream stopped generating when the gateway let go
    cut = _wait_for_rows(live_database, "story-up", 2)
    assert cut[1][1] == 200 and cut[1][3] == 0  # no usage chunk came: counted as 0 (documented)

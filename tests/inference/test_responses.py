"""The Responses API as the official `openai` client sees it, against live gunicorn.

Shares the session's live server with tests/contract/test_openai_client.py (its `server`
and `tokens` fixtures). The storyteller never writes an end token, so a response is cut by
`max_output_tokens`: `incomplete` with that reason, as OpenAI's, and a stream ends
with `response.incomplete` carrying the whole object.
"""

from __future__ import annotations

import openai
import pytest

from api import create_app
from api.config import TestConfig
from api.extensions import db
from tests.contract.test_openai_client import client, server, tokens  # noqa: F401
from tests.tokens.conftest import make_account

MODEL = "storyteller"


@pytest.fixture(scope="module")
def api(server, tokens):  # noqa: F811
    return client(server, tokens["all"])


@pytest.fixture(scope="module")
def stranger(server, openai_server):  # noqa: F811
    """Another user's token, with every scope."""
    app = create_app(TestConfig(SQLALCHEMY_DATABASE_URI=openai_server[1]))
    account = make_account(app, "stranger@example.org")
    token = account.mint("other", scopes=["generate"])["token"]
    with app.app_context():
        db.engine.dispose()
    return client(server, token)


def test_create_from_a_string_and_from_a_message_list(api):
    # Greedy where the test needs `incomplete`: a sampled story may end within its tokens.
    one = api.responses.create(
        model=MODEL, input="Once upon a time", max_output_tokens=6, temperature=0
    )
    assert one.object == "response" and one.id.startswith("resp_")
    assert one.status == "incomplete" and one.incomplete_details.reason == "max_output_tokens"
    assert one.output[0].type == "message" and one.output[0].role == "assistant"
    assert one.output_text and one.output_text == one.output[0].content[0].text
    assert one.usage.output_tokens == 6 and one.usage.input_tokens > 0
    assert one.usage.total_tokens == one.usage.input_tokens + 6
    listed = api.responses.create(
        model=MODEL,
        instructions="Tell a tale of the brothers Grimm.",
        input=[
            {"role": "user", "content": "A frog"},
            {"role": "assistant", "content": [{"type": "output_text", "text": "sat by a well."}]},
            {"role": "user", "content": [{"type": "input_text", "text": "What then?"}]},
        ],
        max_output_tokens=4,
        temperature=0.5,
        top_p=0.9,
        metadata={"story": "frog"},
    )
    assert listed.instructions == "Tell a tale of the brothers Grimm."
    assert (listed.temperature, listed.top_p, listed.metadata) == (0.5, 0.9, {"story": "frog"})
    assert listed.usage.input_tokens > one.usage.input_tokens


def test_stream_sends_typed_events_and_the_whole_response_last(api):
    said = {"input": "A king", "max_output_tokens": 8, "temperature": 0}  # greedy, as above
    with api.responses.stream(model=MODEL, **said) as stream:
        events = list(stream)
    kinds = [event.type for event in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    deltas = [event.delta for event in events if event.type == "response.output_text.delta"]
    assert len(deltas) >= 2  # one event per piece of text, not one at the end
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.incomplete",
    ]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    final = events[-1].response
    assert final.output_text == "".join(deltas) and final.usage.output_tokens == 8
    assert final.status == "incomplete" and final.incomplete_details.reason == "max_output_tokens"
    assert api.responses.retrieve(final.id).output_text == final.output_text


def test_previous_response_id_carries_the_conversation(api):
    first = api.responses.create(model=MODEL, input="A frog lived in a well.", max_output_tokens=4)
    second = api.responses.create(
        model=MODEL, input="And then?", previous_response_id=first.id, max_output_tokens=4
    )
    alone = api.responses.create(model=MODEL, input="And then?", max_output_tokens=4)
    assert second.previous_response_id == first.id
    # The first turn and its answer are read again before the new input.
    assert second.usage.input_tokens >= alone.usage.input_tokens + first.usage.total_tokens
    third = api.responses.create(
        model=MODEL, input="The end.", previous_response_id=second.id, max_output_tokens=2
    )
    assert third.usage.input_tokens > second.usage.input_tokens + second.usage.output_tokens


def test_retrieve_input_items_and_delete(api, stranger):
    made = api.responses.create(
        model=MODEL,
        input=[{"role": "user", "content": "One"}, {"role": "user", "content": "Two"}],
        max_output_tokens=2,
    )
    again = api.responses.retrieve(made.id)
    assert again.model_dump() == made.model_dump()
    items = api.responses.input_items.list(made.id)
    assert [item.content[0].text for item in items.data] == ["Two", "One"]  # newest first
    oldest = api.responses.input_items.list(made.id, order="asc", limit=1)
    assert [item.content[0].text for item in oldest.data] == ["One"] and oldest.has_more
    with pytest.raises(openai.NotFoundError):  # another user's id does not exist for them
        stranger.responses.retrieve(made.id)
    with pytest.raises(openai.NotFoundError):
        stranger.responses.delete(made.id)
    api.responses.delete(made.id)
    with pytest.raises(openai.NotFoundError) as gone:
        api.responses.retrieve(made.id)
    assert gone.value.code == "response_not_found"
    with pytest.raises(openai.NotFoundError) as unknown:
        api.responses.create(model=MODEL, input="x", previous_response_id=made.id)
    assert unknown.value.param == "previous_response_id"


def test_store_false_keeps_nothing_to_retrieve(api):
    made = api.responses.create(model=MODEL, input="A frog", max_output_tokens=2, store=False)
    assert made.store is False
    with pytest.raises(openai.NotFoundError):
        api.responses.retrieve(made.id)


REFUSED = [
    ("tools", {"tools": [{"type": "function", "name": "f", "parameters": {}}]}),
    ("tools", {"tools": [{"type": "file_search", "vector_store_ids": ["vs_1"]}]}),
    ("tools", {"tools": [{"type": "web_search"}]}),
    ("tool_choice", {"tool_choice": "required"}),
    ("reasoning", {"reasoning": {"effort": "low"}}),
    ("text", {"text": {"format": {"type": "json_object"}}}),
    ("text", {"text": {"format": {"type": "json_schema", "name": "x", "schema": {}}}}),
    ("background", {"background": True}),
    ("include", {"include": ["message.output_text.logprobs"]}),
    ("top_logprobs", {"top_logprobs": 3}),
    ("conversation", {"conversation": "conv_1"}),
    ("prompt", {"prompt": {"id": "pmpt_1"}}),
    ("max_tool_calls", {"max_tool_calls": 2}),
]


@pytest.mark.parametrize(("param", "options"), REFUSED, ids=[str(o) for _, o in REFUSED])
def test_each_unsupported_feature_is_a_400_naming_its_field(api, param, options):
    with pytest.raises(openai.BadRequestError) as refused:
        api.responses.create(model=MODEL, input="x", max_output_tokens=1, **options)
    assert refused.value.param == param and refused.value.type == "invalid_request_error"
    assert refused.value.body["message"].startswith(param)


@pytest.mark.parametrize(
    "content",
    [
        [{"type": "input_image", "image_url": "https://example.org/frog.png"}],
        [{"type": "input_text", "text": "a"}, {"type": "input_file", "file_id": "file-1"}],
        [{"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}],
    ],
)
def test_images_files_and_audio_in_the_input_are_refused_by_name(api, content):
    with pytest.raises(openai.BadRequestError) as refused:
        api.responses.create(model=MODEL, input=[{"role": "user", "content": content}])
    assert refused.value.param == "input"
    assert refused.value.body["message"].startswith(f"input[0].content[{len(content) - 1}].type")


def test_errors_are_the_clients_error_classes(server, tokens, api):  # noqa: F811
    with pytest.raises(openai.PermissionDeniedError) as scoped:
        client(server, tokens["embed"]).responses.create(model=MODEL, input="x")
    assert scoped.value.code == "insufficient_scope"
    with pytest.raises(openai.NotFoundError) as missing:
        api.responses.create(model="gpt-4o", input="x")
    assert missing.value.param == "model"
    with pytest.raises(openai.BadRequestError) as bad:
        api.responses.create(model=MODEL, input="x", temperature=3)
    assert bad.value.param == "temperature"
    with pytest.raises(openai.UnprocessableEntityError) as long:
        api.responses.create(model=MODEL, input="frog " * 800)
    assert long.value.param == "input"
    with pytest.raises(openai.AuthenticationError):
        client(server, "mg_" + "A" * 46).responses.retrieve("resp_1")

"""`/v1/responses` lines of a batch: answered whole, as the endpoint answers them.

A batch line is not stored (the output file holds it, `store: false` in its object)
and continues no stored response: `previous_response_id` and `stream` are refused
by name, like any other field a line cannot use.
"""

from __future__ import annotations

import time
from typing import Any

from api.edge.errors import ValidationFailed
from api.responses import service

LINE_DEADLINE_S = 600.0


def respond_line(body: dict[str, Any]) -> tuple[dict[str, Any], str, int, int]:
    """The response object of one validated line, its model and its tokens in and out."""
    if body["stream"]:
        raise ValidationFailed(details={"stream": ["A batch line cannot stream."]})
    if body["previous_response_id"] is not None:
        reason = "A batch line cannot continue a stored response; send the turns in `input`."
        raise ValidationFailed(details={"previous_response_id": [reason]})
    body["store"] = False
    plan = service.plan_response(body, user_id=None, token_id=None)
    deadline = time.monotonic() + LINE_DEADLINE_S
    answer, generation = service.run_response(plan, deadline=deadline)
    return answer, generation.model, generation.prompt_tokens, generation.completion_tokens

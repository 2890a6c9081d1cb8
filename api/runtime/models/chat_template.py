"""How a chat becomes a prompt for a model that has no chat template of its own.

The storyteller is a plain language model: it continues text. Its chat template
is the plainest one: the system (and developer) messages first, then every
message's text in order, separated by blank lines, with no role markers; the
reply continues the last message. So `[{"role": "user", "content": "Once upon a
time"}]` is the prompt `Once upon a time`. A model whose tokenizer ships a chat
template (`chat_template` in `tokenizer_config.json`) uses that instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

INSTRUCTION_ROLES = ("system", "developer")


def render_plain(messages: Sequence[dict[str, Any]]) -> str:
    """The prompt for `messages` under the plain template."""
    first = [m["content"] for m in messages if m["role"] in INSTRUCTION_ROLES]
    rest = [m["content"] for m in messages if m["role"] not in INSTRUCTION_ROLES]
    return "\n\n".join(text for text in (*first, *rest) if text)

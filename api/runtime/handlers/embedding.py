"""A handler model that embeds texts also serves `/v1/embeddings` (issue 26: one way to serve).

A handler is *embedding-shaped* when it takes one required text (other inputs
optional) and gives a float32 vector (a one-dimensional tensor) as its first output:
the built-in `EmbeddingModel` named as a handler model, or any user's encoder. For
one, `HandlerEmbeddingModel` and `HandlerEmbeddingBatcher` stand where a local
embedding model and its batcher stand in the registry: a call's texts go to the
model's process in one frame, which batches them with every worker's, and each
text's units (the built-in model's tokens) are its token count. The worker has no
tokenizer for it, so token-id input is refused (422) and over-long texts are the
handler's to cut, as with an upstream model.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from api.edge.errors import Unprocessable
from api.runtime.errors import DeadlineExceeded
from api.runtime.handlers.client import HandlerClient
from api.runtime.handlers.declarations import Declaration
from api.runtime.handlers.registry import Described, HandlerModels
from api.runtime.specs import ModelInfo


def embedding_fields(declaration: Declaration) -> tuple[str, str] | None:
    """(the text input, the vector output) of an embedding-shaped handler, else None."""
    required = [spec for spec in declaration.inputs if spec.required]
    if declaration.streaming or len(required) != 1 or required[0].kind != "text":
        return None
    vector = declaration.outputs[0]
    if vector.kind != "tensor" or vector.limits["dtype"] != "float32":
        return None
    return (required[0].name, vector.name) if len(vector.limits["shape"]) == 1 else None


class HandlerEmbeddingModel:
    """What `/v1/embeddings` needs of an embedding-shaped handler model."""

    task = "embedding"
    tokenizer = None  # its tokens are the handler's units
    max_input = 0  # its window is the handler's own

    def __init__(self, model_id: str, described: Described) -> None:
        self.id = model_id
        self._info = ModelInfo(model_id, "embedding", 0, 0, described.device, described.created)

    @property
    def info(self) -> ModelInfo:
        return self._info

    def count_tokens(self, text: str) -> int:
        """0: the handler counts (its units)."""
        return 0


class HandlerEmbeddingBatcher:
    """Stands for an embedding model's batcher: `run` sends the texts to the model's process."""

    def __init__(
        self,
        model_id: str,
        described: Described,
        client: HandlerClient,
        fields: tuple[str, str],
        max_queue: int,
    ) -> None:
        self.name = model_id
        self.max_queue = max_queue
        self._client = client
        self._text, self._vector = fields
        spec = described.declaration.input(self._text)
        assert spec is not None
        self._max_length = int(spec.limits["max_length"])

    def run(self, items: Sequence[str], *, deadline: float) -> list[tuple[list[float], int]]:
        too_long = [
            f"input[{index}] is {len(text)} characters; {self.name} reads at most "
            f"{self._max_length}."
            for index, text in enumerate(items)
            if len(text) > self._max_length
        ]
        if too_long:
            raise Unprocessable(too_long[0], details={"input": too_long})
        timeout = deadline - time.monotonic()
        if timeout <= 0:
            raise DeadlineExceeded()
        answers = self._client.predict_items([{self._text: text} for text in items], timeout)
        return [(outputs[self._vector], units) for outputs, units in answers]

    def close(self) -> None:
        """Nothing to stop here: the model's process owns the queue."""


def embedding_handler(
    models: HandlerModels, model_id: str
) -> tuple[HandlerEmbeddingModel, HandlerEmbeddingBatcher] | None:
    """The handler model `model_id` as an embedding model, or None when it is not one.

    503 while its process starts (its declaration is not known before)."""
    described = models.describe(model_id)
    fields = embedding_fields(described.declaration)
    if fields is None:
        return None
    batcher = HandlerEmbeddingBatcher(
        model_id, described, models.client(model_id), fields, models.entries[model_id].max_queue
    )
    return HandlerEmbeddingModel(model_id, described), batcher

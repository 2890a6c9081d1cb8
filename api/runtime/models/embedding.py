"""Sentence embeddings from a transformer encoder: mean pooling over real tokens, L2-normalised.

`EmbeddingModel` is a built-in handler (docs/models.md): it declares its input (a
text) and output (its unit vector), loads in `setup(device)` and answers
`predict(batch)`, so it serves `/v1/embeddings` and, named as a handler model,
`/v1/models/{id}/predict` and the Open Inference Protocol. It runs one padded batch
per call and knows nothing of queues or deadlines (the batcher does). Padding does
not change a text's vector: pooling only averages the positions the attention mask
marks as real, so a text gives the same vector (within float rounding) alone or in
a batch. Tokenizing goes through private copies of the Rust tokenizer, configured
once at load and never changed after, because a shared Hugging Face tokenizer whose
padding or truncation settings change under concurrent calls fails with "Already
borrowed".
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch
from tokenizers import Tokenizer
from transformers import AutoModel, AutoTokenizer

from api.runtime.devices import count_parameters
from api.runtime.models.base import BuiltinModel
from api.runtime.specs import ModelInfo


def _read_max_input(path: str, tokenizer_limit: int, position_limit: int) -> int:
    """The input window: sentence-transformers' `max_seq_length` when given, else the model's."""
    limit = min(tokenizer_limit, position_limit)
    settings = os.path.join(path, "sentence_bert_config.json")
    if os.path.exists(settings):
        with open(settings, encoding="utf-8") as file:
            limit = min(limit, int(json.load(file).get("max_seq_length", limit)))
    return limit


class EmbeddingModel(BuiltinModel):
    """An encoder that turns texts into unit vectors: a handler of one text in, one vector out."""

    task = "embedding"
    inputs = [{"name": "text", "kind": "text", "description": "The text to embed."}]
    outputs = [
        {
            "name": "embedding",
            "kind": "tensor",
            "dtype": "float32",
            "shape": [-1],
            "description": "The text's unit vector (over-long texts are cut at the window).",
        }
    ]
    units = "tokens"
    max_batch_size = 32
    max_wait_ms = 5

    def setup(self, device: str) -> None:
        """Load the tokenizer and weights from `self.path` onto `device`, and warm up."""
        path = self._place(device)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModel.from_pretrained(path, local_files_only=True).eval()
        self.model.to(self.device)
        self.max_input = _read_max_input(
            path, tokenizer.model_max_length, self.model.config.max_position_embeddings
        )
        self.parameters = count_parameters(self.model)
        self._input_names = set(tokenizer.model_input_names)
        self._counter = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
        self._counter.no_truncation()
        self._counter.no_padding()
        self._batcher = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
        self._batcher.enable_truncation(self.max_input)
        self._batcher.enable_padding(pad_id=tokenizer.pad_token_id, pad_token=tokenizer.pad_token)
        self.embed(["warm up"])

    def predict(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The handler's call: each item's vector (a float32 tensor row) and its tokens."""
        vectors, counts = self.embed_tensor([item["text"] for item in batch])
        return [
            {"embedding": vectors[index], "_units": counts[index]} for index in range(len(batch))
        ]

    @property
    def dimensions(self) -> int:
        """The length of each vector (as the model server's remote copy reports it)."""
        return int(self.model.config.hidden_size)

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(
            self.id, "embedding", self.parameters, self.max_input, str(self.device), self.created
        )

    @property
    def tokenizer(self) -> Tokenizer:
        """The tokenizer with no truncation or padding (never reconfigure it: it is shared)."""
        return self._counter

    def count_tokens(self, text: str) -> int:
        """Tokens `text` takes in the model's window, special tokens included (thread-safe)."""
        return len(self._counter.encode(text, add_special_tokens=True).ids)

    def embed(self, texts: list[str]) -> tuple[list[list[float]], list[int]]:
        """One unit vector and one token count per text, in order (over-long texts truncated)."""
        if not texts:
            return [], []
        vectors, counts = self.embed_tensor(texts)
        return vectors.tolist(), counts

    def embed_tensor(self, texts: list[str]) -> tuple[torch.Tensor, list[int]]:
        """`embed` as one float32 CPU tensor of shape (len(texts), dimensions)."""
        encodings = self._batcher.encode_batch(texts, add_special_tokens=True)
        columns = {
            "input_ids": [encoding.ids for encoding in encodings],
            "attention_mask": [encoding.attention_mask for encoding in encodings],
            "token_type_ids": [encoding.type_ids for encoding in encodings],
        }
        inputs = {
            name: torch.tensor(values, dtype=torch.long, device=self.device)
            for name, values in columns.items()
            if name in self._input_names
        }
        attention = inputs["attention_mask"]
        with torch.inference_mode():
            hidden = self.model(**inputs).last_hidden_state
            mask = attention.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            vectors = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return vectors.float().cpu().contiguous(), attention.sum(dim=1).cpu().tolist()

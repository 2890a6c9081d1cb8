"""Text generation from a causal language model, one token at a time with a KV cache.

`TextGenerator` is a built-in handler (docs/models.md): it declares a prompt and the
sampling options in and the text out, loads in `setup(device)`, and its generator
`predict` streams the text, so named as a handler model it serves
`/v1/models/{id}/predict` like any other. The OpenAI endpoints call `stream`, the
same decoding loop with what only they need: stop sequences, cancellation and a
deadline checked at every token.

`TextGenerator.stream` runs its own decoding loop instead of `model.generate` so
that each step can check the caller's cancel event and deadline, and so that text
leaves as soon as each token is decoded. Temperature 0 is greedy; otherwise the
next token is drawn (after top-p filtering) with a per-request `torch.Generator`,
so a request with a seed is reproducible whatever else the worker is doing.
Concurrency and queueing are not decided here (see `gate`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM, AutoTokenizer

from api.runtime.devices import count_parameters
from api.runtime.errors import DeadlineExceeded
from api.runtime.models.base import BuiltinModel
from api.runtime.models.chat_template import render_plain
from api.runtime.models.decoding import IncrementalDecoder, StopSequenceFilter
from api.runtime.models.sampling import pick_token
from api.runtime.specs import ModelInfo


@dataclass(frozen=True)
class TextChunk:
    """A piece of generated text; the last chunk of a stream carries its finish reason."""

    text: str
    finish_reason: str | None = None


class GenerationStream:
    """Iterate for `TextChunk`s; the token counts and finish reason fill in as it runs.

    The finish reason is "stop" (end-of-text token or a stop sequence), "length"
    (`max_tokens` reached) or "cancelled" (the cancel event was set). A passed
    deadline raises `DeadlineExceeded` from the iteration. `close()` ends it early.
    """

    def __init__(
        self,
        prompt_tokens: int,
        run: Callable[[GenerationStream], Generator[TextChunk, None, None]],
    ) -> None:
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = 0
        self.finish_reason: str | None = None
        self._chunks = run(self)

    def __iter__(self) -> GenerationStream:
        return self

    def __next__(self) -> TextChunk:
        chunk = next(self._chunks)
        if chunk.finish_reason is not None:
            self.finish_reason = chunk.finish_reason
        return chunk

    def close(self) -> None:
        self._chunks.close()


def _option(name: str, default: float | None, **limits: Any) -> dict[str, Any]:
    """An optional number input of the handler declaration (docs/models.md)."""
    return {"name": name, "kind": "number", "required": False, "default": default, **limits}


class TextGenerator(BuiltinModel):
    """A causal language model that streams completions of a prompt: a streaming handler."""

    task = "text-generation"
    inputs = [
        {"name": "prompt", "kind": "text", "description": "The text to continue."},
        _option("max_tokens", 16, integer=True, minimum=1, maximum=4096),
        _option("temperature", 1.0, minimum=0, maximum=2),
        _option("top_p", 1.0, minimum=0, maximum=1),
        _option("seed", None, integer=True, minimum=0, maximum=2**63 - 1),
    ]
    outputs = [{"name": "text", "kind": "text", "description": "The text generated so far."}]
    units = "tokens"  # the prompt's and the generated ones
    max_batch_size = 1  # a generator `predict` streams one item at a time

    def setup(self, device: str) -> None:
        """Load the tokenizer and weights from `self.path` onto `device`, and warm up."""
        path = self._place(device)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True).eval()
        self.model.to(self.device)
        config = self.model.config
        positions = getattr(config, "n_positions", None) or config.max_position_embeddings
        self.max_input = int(min(positions, tokenizer.model_max_length))
        self.parameters = count_parameters(self.model)
        self.eos_token_id = tokenizer.eos_token_id
        if self.eos_token_id is None:
            self.eos_token_id = config.eos_token_id
        bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else self.eos_token_id
        self._start_ids = [] if bos is None else [int(bos)]
        # Rendering a chat template only reads the tokenizer, so threads may share it.
        self._chat_tokenizer = tokenizer if getattr(tokenizer, "chat_template", None) else None
        # A private, never-reconfigured copy: safe to share between request threads.
        self.tokenizer = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        for _ in self.stream("Once", max_tokens=2, temperature=0):
            pass

    def predict(self, batch: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """The handler's call: the text so far after each piece, and the tokens used so far.

        A prompt that does not fit with `max_tokens` is cut from the left, keeping its end.
        """
        (item,) = batch
        max_tokens = min(int(item["max_tokens"]), self.max_input - 1)
        stream = self.stream_ids(
            self.encode(item["prompt"])[-(self.max_input - max_tokens) :],
            max_tokens=max_tokens,
            temperature=float(item["temperature"]),
            top_p=float(item["top_p"]),
            seed=None if item["seed"] is None else int(item["seed"]),
        )
        text = ""
        for chunk in stream:
            text += chunk.text
            yield {"text": text, "_units": stream.prompt_tokens + stream.completion_tokens}

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(
            self.id,
            "text-generation",
            self.parameters,
            self.max_input,
            str(self.device),
            self.created,
        )

    def chat_prompt(self, messages: Sequence[dict[str, Any]]) -> str:
        """The prompt for a chat: the tokenizer's chat template, else the plain one."""
        if self._chat_tokenizer is None:
            return render_plain(messages)
        turns = [{"role": m["role"], "content": m["content"]} for m in messages]
        rendered = self._chat_tokenizer.apply_chat_template(
            turns, tokenize=False, add_generation_prompt=True
        )
        return str(rendered)

    def encode(self, text: str) -> list[int]:
        """The prompt's token ids (no special tokens added)."""
        return list(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def count_tokens(self, text: str) -> int:
        """Tokens the model reads for `text` as a prompt (an empty one reads the start token)."""
        return len(self.encode(text) or self._start_ids)

    def stream(self, prompt: str, **options: Any) -> GenerationStream:
        """Start generating after `prompt`; `options` are those of `stream_ids`."""
        return self.stream_ids(self.encode(prompt), **options)

    def stream_ids(
        self,
        prompt_ids: list[int],
        *,
        max_tokens: int,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int | None = None,
        stop: Sequence[str] = (),
        cancel: threading.Event | None = None,
        deadline: float | None = None,
    ) -> GenerationStream:
        """Start generating up to `max_tokens` after the prompt's ids; `deadline` is a
        monotonic time.

        Raise ValueError when the prompt and `max_tokens` do not fit in `max_input`
        (callers check first and answer 400).
        """
        prompt_ids = prompt_ids or self._start_ids
        if not prompt_ids:
            raise ValueError("the prompt is empty and the model has no start token")
        if len(prompt_ids) + max_tokens > self.max_input:
            raise ValueError(
                f"{len(prompt_ids)} prompt tokens + {max_tokens} new tokens exceed "
                f"the model's {self.max_input}"
            )
        rng = torch.Generator()
        if seed is None:
            rng.seed()
        else:
            rng.manual_seed(seed)
        return GenerationStream(
            len(prompt_ids),
            lambda stream: self._generate(
                stream, prompt_ids, max_tokens, temperature, top_p, rng, stop, cancel, deadline
            ),
        )

    def _generate(
        self,
        stream: GenerationStream,
        prompt_ids: list[int],
        max_tokens: int,
        temperature: float,
        top_p: float,
        rng: torch.Generator,
        stop: Sequence[str],
        cancel: threading.Event | None,
        deadline: float | None,
    ) -> Generator[TextChunk, None, None]:
        decoder = IncrementalDecoder(self.tokenizer)
        stops = StopSequenceFilter(stop)
        inputs = torch.tensor([prompt_ids], dtype=torch.long, device=self.device)
        past = None
        finish_reason = "length"
        for _ in range(max_tokens):
            if cancel is not None and cancel.is_set():
                finish_reason = "cancelled"
                break
            if deadline is not None and time.monotonic() > deadline:
                raise DeadlineExceeded()
            with torch.inference_mode():
                output = self.model(input_ids=inputs, past_key_values=past, use_cache=True)
                past = output.past_key_values
                token = pick_token(output.logits[0, -1].float(), temperature, top_p, rng)
            if token == self.eos_token_id:
                finish_reason = "stop"
                break
            stream.completion_tokens += 1
            text = stops.push(decoder.push(token))
            if stops.stopped:
                yield TextChunk(text, "stop")
                return
            if text:
                yield TextChunk(text)
            inputs = torch.tensor([[token]], dtype=torch.long, device=self.device)
        tail = stops.push(decoder.flush())
        if stops.stopped:
            finish_reason = "stop"
        yield TextChunk(tail + stops.flush(), finish_reason)

"""Pick the next token from a model's logits: greedy, or sampled from the top-p nucleus."""

from __future__ import annotations

import torch

MIN_TEMPERATURE = 1e-4


def pick_token(logits: torch.Tensor, temperature: float, top_p: float, rng: torch.Generator) -> int:
    """Greedy at temperature ~0, else sample from the top-p nucleus of softmax(logits / T).

    A temperature below `MIN_TEMPERATURE` would overflow the scaled logits to
    infinity, so it is greedy; the most likely token always stays in the nucleus,
    however small `top_p` is.
    """
    if temperature < MIN_TEMPERATURE:
        return int(logits.argmax())
    logits = logits / temperature
    if top_p < 1:
        sorted_logits, order = logits.sort(descending=True)
        probs = sorted_logits.softmax(dim=-1)
        # Drop a token when the tokens ranked above it already hold top_p of the mass.
        drop = probs.cumsum(dim=-1) - probs >= top_p
        drop[0] = False
        sorted_logits[drop] = float("-inf")
        choice = torch.multinomial(sorted_logits.softmax(dim=-1).cpu(), 1, generator=rng)
        return int(order[int(choice)])
    return int(torch.multinomial(logits.softmax(dim=-1).cpu(), 1, generator=rng))

"""Inference over HTTP: `/v1/embeddings`, `/v1/completions`, `/v1/chat/completions`, `/v1/models`.

`routes` and `completions` are the blueprints, `schemas` (with `fields`) their
contract, `service` what they call, `openai_format` the answers' OpenAI shape. The
models themselves are run by the runtime (`api.runtime`), which knows no requests.
"""

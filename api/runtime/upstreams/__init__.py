"""Upstream models: a `MODELS` entry served by another server, behind modelgate's front door.

`id=upstream:openai:BASE[|BASE ...] key=value ...` names an OpenAI-compatible server
(Infinity, TEI, vLLM, llama.cpp, Ollama) and its replicas (`config`). Each worker
process keeps one `ReplicaSet` per model (`replicas`: round-robin, a circuit breaker per
replica, health from `GET {base}/models`) and a pooled HTTP client (`openai`); the
registry serves the model through `embedding`, which stands where a local embedding
model and its batcher stand, so routes, metering, limits and the cache are unchanged.
See docs/upstreams.md.
"""

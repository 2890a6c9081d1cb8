"""The model runtime: loading models, batching and admitting work, the model server.

Knows nothing of Flask requests: `specs` reads the `MODELS` setting, `settings` the
queueing ones, `registry` owns a worker's loaded models, `batcher` (embeddings) and
`gate` (generation) decide when concurrent work reaches a model, `model_server` + `wire` + `remote`
serve one copy of the embedding model to every gunicorn worker of a host,
`devices` picks the torch device and threads, `cache` keeps embeddings in Redis,
`metrics` counts the work. The built-in model kinds live in `models/` (handlers of the
interface in `handlers/`). Nothing here loads a
model or imports torch at import time: models load in `ModelRegistry.load_all`
(at start) or on first use.
"""

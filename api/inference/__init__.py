"""Inference: the PyTorch models behind `/v1/embeddings`, `/v1/completions` and `/v1/models`.

`specs` reads the `MODELS` setting, `embedding` and `generation` wrap the loaded
models, `batcher` and `gate` decide when concurrent requests reach them,
`registry` owns the loaded models of a worker process and `service` is what the
routes call. Nothing here loads a model or imports torch at import time: models
load in `ModelRegistry.load_all` (at start) or on first use.
"""

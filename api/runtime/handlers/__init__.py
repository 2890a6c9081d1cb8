"""Handler models: any PyTorch model served from a small class and one `MODELS` line.

A handler class declares its inputs and outputs as plain dicts (`declarations`),
loads its weights in `setup(device)` and answers `predict(batch)`. This package
checks the declarations (`declarations`), loads the class (`loader`), checks and
decodes inputs and outputs (`inputs`, `outputs`), batches calls (`runner`) and runs
each handler model in a supervised process of its own (`server`, `client`).
Nothing here runs at import time; torch and Pillow load only where a model runs.
"""

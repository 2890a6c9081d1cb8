"""Every feature's models, imported together so the metadata (and Alembic) sees all tables."""

from __future__ import annotations


def register() -> None:
    """Import each feature's models module; called once by `create_app`."""
    import api.audit.models
    import api.auth.models
    import api.batches.models
    import api.files.models
    import api.responses.models
    import api.tokens.models
    import api.usage.models  # noqa: F401

"""Schemathesis hooks for fuzzing modelgate (none yet)."""

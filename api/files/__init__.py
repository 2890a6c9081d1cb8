"""OpenAI-compatible files: uploads for batches, and the output files batches write."""

"""OpenAI-compatible batches: many requests in one JSONL file, run by Celery workers."""

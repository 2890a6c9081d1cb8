"""The process beside the requests: background threads, the Celery app, glibc's memory.

`background` (work after the answer, in an app context), `jobs` (the Celery app that
runs batches and the periodic tasks), `memory` (gunicorn workers give large blocks back)
and `ending` (processes that loaded torch leave without its slow teardown).
"""

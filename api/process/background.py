"""Work done after the answer: a small thread pool that runs jobs in an app context.

Used for sending mail and for the account actions whose answer must not depend
on (or take longer for) an email that has an account. A job runs with the trace
id of the request that queued it; an exception is logged (type only, never its
text, which may hold an address) and goes no further.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

from flask import Flask, current_app

from api.observability.tracing import bind_trace_id, current_trace_id, reset_trace_id

log = logging.getLogger(__name__)
_pool: ThreadPoolExecutor | None = None
_pending: set[Future[None]] = set()
_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="background")
        return _pool


def _run(app: Flask, trace_id: str | None, job: Callable[..., Any], args: tuple) -> None:
    token = bind_trace_id(trace_id)
    try:
        with app.app_context():
            job(*args)
    except Exception as error:
        log.error(
            "background job failed",
            extra={"error.type": type(error).__name__, "event.action": job.__name__},
        )
    finally:
        reset_trace_id(token)


def submit(job: Callable[..., Any], *args: Any) -> Future[None]:
    """Run `job(*args)` soon in this app's context, with the current trace id."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    return _submit(app, current_trace_id(), job, args)


def submit_later(delay_s: float, job: Callable[..., Any], *args: Any) -> threading.Timer:
    """Run `job(*args)` after `delay_s` seconds, like `submit`; no pool thread waits meanwhile.

    The timer lives in this process only: a job still waiting when the process exits
    is not run.
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    timer = threading.Timer(delay_s, _submit, (app, current_trace_id(), job, args))
    timer.daemon = True
    timer.start()
    return timer


def _submit(app: Flask, trace_id: str | None, job: Callable[..., Any], args: tuple) -> Future[None]:
    future = _executor().submit(_run, app, trace_id, job, args)
    with _lock:
        _pending.add(future)
    future.add_done_callback(_forget)
    return future


def _forget(future: Future[None]) -> None:
    with _lock:
        _pending.discard(future)


def wait_idle(timeout: float = 10.0) -> None:
    """Wait until every job queued so far (and those they queued) has finished; for tests."""
    for _ in range(10):
        with _lock:
            pending = list(_pending)
        if not pending:
            return
        wait(pending, timeout=timeout)

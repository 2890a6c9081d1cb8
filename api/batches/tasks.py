"""The batch queue and its Celery tasks: queue a batch, run it, take up batches whose
worker went away, purge old files.

`enqueue` and `queue_grace` are the queue's side that `service` uses; the tasks are
thin wrappers: the work is in `runner.py`, `lease.py` and `api/files/service.py`.
Each task runs in the Flask app's context (`api.process.jobs`). The task names
(`batches.run`, `batches.recover`, `files.purge`) are what queued messages and the
beat schedule route by: keep them.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from flask import current_app
from sqlalchemy import update

from api.batches import runner
from api.batches.lease import lapsed
from api.batches.models import ACTIVE_STATUSES, Batch
from api.db_types import utcnow
from api.extensions import db
from api.files.service import purge_expired_files

log = logging.getLogger(__name__)


def queue_grace() -> timedelta:
    """How long a queued batch waits for a worker before the recovery queues it again."""
    return timedelta(seconds=current_app.config["BATCH_QUEUE_GRACE_S"])


def enqueue(batch_id: str) -> None:
    """Hand the batch to a worker; a broker that is down only delays it (see recovery)."""
    try:
        run_batch_task.delay(batch_id)
    except Exception as error:
        log.warning(
            "batch not queued: the broker is unavailable",
            extra={"error.type": type(error).__name__, "event.action": "batch-queue"},
        )


@shared_task(name="batches.run", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_batch_task(batch_id: str) -> str | None:
    """Run one batch to its end (a no-op when another live worker has it)."""
    batch = db.session.get(Batch, batch_id)
    if batch is None or batch.status not in ACTIVE_STATUSES:
        return None
    return runner.run_batch(batch_id, requeue=enqueue)


@shared_task(name="batches.recover", ignore_result=True)
def recover_batches_task() -> list[str]:
    """Queue again every unfinished batch whose lease or queue grace has lapsed."""
    now = utcnow()
    taken = []
    for batch_id in lapsed(now):
        moved = db.session.execute(
            update(Batch)
            .where(Batch.id == batch_id, Batch.lease_expires_at < now)
            .values(lease_owner=None, lease_expires_at=now + queue_grace())
        )
        db.session.commit()
        if moved.rowcount == 1:  # type: ignore[attr-defined]
            enqueue(batch_id)
            taken.append(batch_id)
    if taken:
        log.info("batches queued again", extra={"event.action": "batch-recover"})
    return taken


@shared_task(name="files.purge", ignore_result=True)
def purge_files_task() -> int:
    """Delete the files past their expiry."""
    return purge_expired_files()

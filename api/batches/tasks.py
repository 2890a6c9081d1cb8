"""The Celery tasks: run a batch, take up batches whose worker went away, purge old files.

Thin wrappers: the work is in `runner.py` and `api/files/service.py`. Each task
runs in the Flask app's context (`api.process.jobs`).
"""

from __future__ import annotations

import logging

from celery import shared_task
from sqlalchemy import update

from api.batches import runner
from api.batches.models import ACTIVE_STATUSES, Batch
from api.db_types import utcnow
from api.extensions import db
from api.files.service import purge_expired_files

log = logging.getLogger(__name__)


@shared_task(name="batches.run", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_batch_task(batch_id: str) -> str | None:
    """Run one batch to its end (a no-op when another live worker has it)."""
    batch = db.session.get(Batch, batch_id)
    if batch is None or batch.status not in ACTIVE_STATUSES:
        return None
    return runner.run_batch(batch_id)


@shared_task(name="batches.recover", ignore_result=True)
def recover_batches_task() -> list[str]:
    """Queue again every unfinished batch whose lease or queue grace has lapsed."""
    from api.batches.service import enqueue, queue_grace

    now = utcnow()
    taken = []
    for batch_id in runner.lapsed(now):
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

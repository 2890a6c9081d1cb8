"""A batch's lease: which worker runs it, until when, and whether it may go on.

A worker claims the batch (owner and expiry in its row), renews the lease at each
checkpoint and reads the row there: a batch being cancelled, past its window, or
whose owner was disabled or whose token was revoked stops (`Stopped`); a lease
another worker holds now stops the run without writing (`LeaseLost`). `lapsed` finds
the batches whose worker went away (for `tasks.recover_batches`).
"""

from __future__ import annotations

import socket
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import or_, select, update

from api.auth.models import AuthSession, User
from api.batches.execute import Interrupted
from api.batches.models import ACTIVE_STATUSES, Batch
from api.db_types import utcnow
from api.extensions import db
from api.files.storage import file_storage
from api.tokens.models import ApiToken

CHECK_EVERY_S = 1.0


class Stopped(Interrupted):
    """The batch must end now as `ending` (cancelled, expired, or failed with `errors`)."""

    def __init__(self, ending: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(ending)
        self.ending = ending
        self.errors = errors


class Yielded(Interrupted):
    """Another user's batch waits: give the worker up after this slice, queue again."""


class LeaseLost(Interrupted):
    """Another worker holds the batch now: stop without writing anything more."""


def new_owner() -> str:
    return f"{socket.gethostname()[:32]}:{uuid.uuid4().hex[:12]}"


class BatchLease:
    """One worker's hold on one batch: claim, renew and read, release."""

    def __init__(self, batch_id: str, owner: str) -> None:
        self.batch_id = batch_id
        self.owner = owner
        self.lease = timedelta(seconds=current_app.config["BATCH_LEASE_S"])
        self.storage = file_storage()
        self.parts = f"batches/{batch_id}"
        self._checked = 0.0
        self._started = time.monotonic()

    def claim(self) -> bool:
        now = utcnow()
        claimed = db.session.execute(
            update(Batch)
            .where(
                Batch.id == self.batch_id,
                Batch.status.in_(ACTIVE_STATUSES),
                or_(
                    Batch.lease_owner.is_(None),
                    Batch.lease_expires_at < now,
                    Batch.lease_owner == self.owner,
                ),
            )
            .values(
                lease_owner=self.owner,
                lease_expires_at=now + self.lease,
                attempts=Batch.attempts + 1,
            )
        )
        db.session.commit()
        return claimed.rowcount == 1  # type: ignore[attr-defined]

    def release(self, retry_in_s: float = 0.0, failed: bool = True) -> None:
        """Give the lease up; an unfinished batch is taken up again after `retry_in_s`.

        A batch that only gave its turn up (`failed=False`) gets its attempt back.
        """
        db.session.rollback()
        db.session.execute(
            update(Batch)
            .where(Batch.id == self.batch_id, Batch.lease_owner == self.owner)
            .values(
                lease_owner=None,
                lease_expires_at=utcnow() + timedelta(seconds=retry_in_s),
                attempts=Batch.attempts - (0 if failed else 1),
            )
        )
        db.session.commit()

    def checkpoint(self, force: bool = False) -> None:
        """Renew the lease and read the row (at most once a second): stop when told to."""
        if not force and time.monotonic() - self._checked < CHECK_EVERY_S:
            return
        self._checked = time.monotonic()
        now = utcnow()
        renewed = db.session.execute(
            update(Batch)
            .where(Batch.id == self.batch_id, Batch.lease_owner == self.owner)
            .values(lease_expires_at=now + self.lease)
        )
        db.session.commit()
        if renewed.rowcount != 1:  # type: ignore[attr-defined]
            raise LeaseLost()
        batch = self.batch()
        db.session.refresh(batch)
        if batch.status == "cancelling" or not _owner_allowed(batch):
            raise Stopped("cancelled")
        if now >= batch.expires_at:
            raise Stopped("expired")

    def batch(self) -> Batch:
        batch = db.session.get(Batch, self.batch_id)
        assert batch is not None
        return batch


def _owner_allowed(batch: Batch) -> bool:
    """The credential that made the batch could still make it: its user enabled, and the
    token live (neither revoked nor expired) or the login session not ended."""
    now = utcnow()
    user = db.session.execute(select(User.disabled_at).where(User.id == batch.user_id)).first()
    if user is None or user.disabled_at is not None:
        return False
    if batch.token_id is not None:
        token = db.session.execute(
            select(ApiToken.revoked_at, ApiToken.expires_at).where(ApiToken.id == batch.token_id)
        ).first()
        return token is not None and token.revoked_at is None and _live(token.expires_at, now)
    if batch.session_id is not None:
        session = db.session.execute(
            select(AuthSession.revoked_at, AuthSession.expires_at).where(
                AuthSession.id == batch.session_id
            )
        ).first()
        return session is not None and session.revoked_at is None and _live(session.expires_at, now)
    return True


def _live(expires_at: datetime | None, now: datetime) -> bool:
    return expires_at is None or expires_at > now


def lapsed(now: datetime) -> list[str]:
    """Ids of unfinished batches whose lease (or queue grace) has run out."""
    return list(
        db.session.scalars(
            select(Batch.id)
            .where(Batch.status.in_(ACTIVE_STATUSES), Batch.lease_expires_at < now)
            .limit(100)
        )
    )

"""The usage spool: rows reach the database in bulk, once, whatever happens to the process."""

from __future__ import annotations

import fcntl
import json
import multiprocessing
import os
import time
import uuid
from pathlib import Path

from sqlalchemy import func, select

from api.db_types import utcnow
from api.extensions import db
from api.usage.models import InferenceRecord, RejectedCalls
from api.usage.spool import UsageSpool
from tests.auth.conftest import make_verified_user
from tests.tokens.conftest import make_account


def _line(user_id: int, **extra) -> dict:
    return {
        "kind": "record",
        "request_id": uuid.uuid4().hex,
        "user_id": user_id,
        "token_id": None,
        "endpoint": "models",
        "model": None,
        "status": 200,
        "tokens_in": 0,
        "tokens_out": 0,
        "latency_ms": 1.0,
        "trace_id": "spool-test",
        "created_at": utcnow().isoformat(),
        **extra,
    }


def _count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(InferenceRecord)) or 0


def test_rows_arrive_in_bulk_and_replays_insert_nothing_twice(app, tmp_path):
    user_id = make_verified_user(app, "spool@example.org")
    spool = UsageSpool(app, str(tmp_path / "spool"), interval_s=3600)  # flushed by hand here
    lines = [_line(user_id) for _ in range(25)]
    for line in lines:
        spool.append(line)
    assert spool.flush() == 25 and _count(app) == 25
    assert list((tmp_path / "spool").glob("*.flushing")) == []

    # A flush that died after its commit, before deleting its file, is replayed harmlessly.
    replay = tmp_path / "spool" / "usage-1-replayed.flushing"
    replay.write_text("".join(json.dumps(line) + "\n" for line in lines[:10]))
    assert spool.flush() == 10 and _count(app) == 25
    spool.close()


def test_a_dead_processs_spool_is_adopted(app, tmp_path):
    user_id = make_verified_user(app, "orphan@example.org")
    directory = tmp_path / "spool"
    directory.mkdir()
    # What a SIGKILLed worker leaves: an active file nobody holds a lock on any more.
    orphan = directory / "usage-999999-deadbeef.active"
    orphan.write_text("".join(json.dumps(_line(user_id)) + "\n" for _ in range(3)))
    # A live process's active file (its lock held) is left alone.
    alive = directory / "usage-1-alive.active"
    alive.write_text(json.dumps(_line(user_id)) + "\n")
    holder = os.open(alive, os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        spool = UsageSpool(app, str(directory), interval_s=3600)
        assert spool.flush() == 3
        assert _count(app) == 3 and not orphan.exists() and alive.exists()
        spool.close()
    finally:
        os.close(holder)


def test_a_file_left_half_opened_is_swept_once_abandoned(app, tmp_path):
    # A worker killed between creating its next file and naming it active leaves it empty.
    directory = tmp_path / "spool"
    directory.mkdir()
    abandoned, fresh = directory / "usage-9-old.opening", directory / "usage-9-new.opening"
    abandoned.touch()
    fresh.touch()
    os.utime(abandoned, (time.time() - 120, time.time() - 120))
    spool = UsageSpool(app, str(directory), interval_s=3600)
    spool.flush()
    assert not abandoned.exists() and fresh.exists()  # a fresh one may be a live worker's
    spool.close()


def _adopt_until(app, directory: Path, stop, adopted) -> None:
    """Another worker's flusher, looking for dead processes' files as fast as it can."""
    spool = UsageSpool(app, str(directory), interval_s=3600)
    count = 0
    while not stop.is_set():
        count += len(spool._orphans())
    adopted.put(count)


def test_a_live_workers_new_file_is_never_adopted(app, tmp_path):
    # A HUP starts new workers whose flushers look for orphans while the old workers rotate
    # their files. A file seen before its lock was taken was adopted and flushed while its
    # owner still wrote to it: rows lost, and the owner's flusher thread died on the rename.
    directory = tmp_path / "spool"
    spool = UsageSpool(app, str(directory), interval_s=3600)
    context = multiprocessing.get_context("fork")
    stop, adopted = context.Event(), context.Queue()
    adopter = context.Process(target=_adopt_until, args=(app, directory, stop, adopted))
    adopter.start()
    rows = 0
    try:
        for i in range(8000):
            spool.append({"kind": "record", "i": i})
            flushing = spool._rotate()
            assert flushing is not None
            rows += len(flushing.read_bytes().splitlines())
            flushing.unlink()
    finally:
        stop.set()
        adopter.join(timeout=10)
    assert adopted.get(timeout=5) == 0  # the adopter took nothing: nobody here had died
    assert rows == 8000
    spool.close()


def test_429s_are_summed_into_one_row_per_day(app, tmp_path):
    user_id = make_verified_user(app, "hammer@example.org")
    spool = UsageSpool(app, str(tmp_path / "spool"), interval_s=3600)
    day = utcnow().date().isoformat()
    for _ in range(7):
        spool.append({"kind": "rejected", "user_id": user_id, "day": day, "endpoint": "models"})
    spool.flush()
    for _ in range(3):
        spool.append({"kind": "rejected", "user_id": user_id, "day": day, "endpoint": "models"})
    spool.close()
    with app.app_context():
        rows = db.session.scalars(select(RejectedCalls)).all()
    assert [(row.endpoint, row.count) for row in rows] == [("models", 10)]


def test_rows_wait_while_the_database_is_down(app, tmp_path, make_app):
    user_id = make_verified_user(app, "patient@example.org")
    broken = make_app(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/missing/dir/none.db")
    spool = UsageSpool(broken, str(tmp_path / "spool"), interval_s=3600)
    spool.append(_line(user_id))
    assert spool.flush() == 0  # the write failed: the file stays
    assert len(list((tmp_path / "spool").glob("*.flushing"))) == 1
    spool.close()
    # Once a process that can reach the database flushes, the row arrives.
    healthy = UsageSpool(app, str(tmp_path / "spool"), interval_s=3600)
    assert healthy.flush() == 1 and _count(app) == 1
    healthy.close()
    assert Path(tmp_path / "spool").exists()


def test_an_unwritable_spool_falls_back_to_direct_writes(make_app, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the spool directory should be")
    app = make_app(USAGE_SPOOL_DIR=str(blocker / "spool"))
    account = make_account(app)
    token = account.mint()["token"]
    response = account.client.get("/v1/models", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert _count(app) == 1  # written straight to the database

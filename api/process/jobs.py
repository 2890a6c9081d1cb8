"""The Celery app, made by `create_app` (Flask's Celery pattern); tasks run in the app's context.

`celery -A wsgi:celery_app worker -B` runs batches (api/batches/tasks.py) and,
with `-B`, the periodic tasks (recovery of abandoned batches, purge of expired
files). The broker is Redis when `REDIS_URL` is set, else a folder under
`instance/` (development: no server to install). Tasks are acknowledged after they
finish, so a worker that dies mid-task leaves its message to be delivered again;
batches also carry their own lease (see api/batches/runner.py).
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from celery import Celery, Task
from celery.signals import beat_init, worker_init, worker_process_init
from flask import Flask


def _settings(app: Flask) -> dict[str, Any]:
    config = app.config
    schedule = {
        "recover-batches": {
            "task": "batches.recover",
            "schedule": timedelta(seconds=config["BATCH_RECOVER_S"]),
        },
        "purge-files": {"task": "files.purge", "schedule": timedelta(hours=1)},
    }
    settings: dict[str, Any] = {
        "broker_url": config["CELERY_BROKER_URL"],
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": 2,
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_concurrency": 1,
        "worker_hijack_root_logger": False,
        # A broker that is down fails the publish quickly; the batch row is recovered later.
        "task_publish_retry_policy": {
            "max_retries": 1,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.2,
        },
        "beat_schedule": schedule,
        "beat_schedule_filename": os.path.join(config["CELERY_BROKER_DIR"], "beat-schedule"),
    }
    if config["CELERY_BROKER_URL"].startswith("filesystem://"):
        folder = os.path.join(config["CELERY_BROKER_DIR"], "queue")
        control = os.path.join(config["CELERY_BROKER_DIR"], "control")
        for path in (folder, control):
            os.makedirs(path, exist_ok=True)
        settings["broker_transport_options"] = {
            "data_folder_in": folder,
            "data_folder_out": folder,
            "control_folder": control,  # else `control/` in the working directory
            "store_processed": False,
        }
    elif config["CELERY_BROKER_URL"].startswith("redis"):
        settings["broker_transport_options"] = {
            "socket_timeout": 2,
            "socket_connect_timeout": 2,
        }
    return settings


def init_app(app: Flask) -> Celery:
    """Make the app's Celery app (`app.extensions["celery"]`); tasks run in `app`'s context."""

    class FlaskTask(Task):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery = Celery(app.name, task_cls=FlaskTask)
    celery.config_from_object(_settings(app))
    celery.set_default()
    app.extensions["celery"] = celery
    # One worker process serves one app (wsgi.py), so the first app's handlers are the ones.
    worker_init.connect(lambda **_: _start_worker(app), weak=False, dispatch_uid="modelgate-worker")
    beat_init.connect(lambda **_: _make_folder(app), weak=False, dispatch_uid="modelgate-beat")
    worker_process_init.connect(
        lambda **_: _fresh_connections(app), weak=False, dispatch_uid="modelgate-fork"
    )
    return celery


def _make_folder(app: Flask) -> None:
    """The folder of beat's schedule file (and of the broker, without Redis)."""
    os.makedirs(app.config["CELERY_BROKER_DIR"], exist_ok=True)


def _start_worker(app: Flask) -> None:
    """Batch work yields the CPU to interactive calls on the same host (pool processes inherit)."""
    _make_folder(app)
    # Set before the pool process loads a model: its one pool process takes every core
    # (GUNICORN_WORKERS in a shared env file would otherwise split them).
    os.environ.setdefault("TORCH_THREADS", str(os.cpu_count() or 1))
    nice = app.config["BATCH_WORKER_NICE"]
    if nice > 0:
        os.nice(nice)


def _fresh_connections(app: Flask) -> None:
    """A forked pool process must not share the parent's database connections."""
    from api.extensions import db

    with app.app_context():
        db.engine.dispose(close=False)

"""Gunicorn settings: gthread workers, Prometheus multiprocess mode, no control socket.

Read by the master before any worker imports the app, which is why the Prometheus
directory is set in the environment here. Each value can be overridden by an
environment variable of the same name with a `GUNICORN_` prefix.
"""

import os
import shutil
import sys

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# Exported so each worker sizes torch's thread pool to its share of the cores.
workers = int(os.environ.setdefault("GUNICORN_WORKERS", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = 20
keepalive = 5
# Gunicorn's largest request line (its default is 4094); Nginx bounds it in front too.
limit_request_line = int(os.environ.get("GUNICORN_LIMIT_REQUEST_LINE", "8190"))
# The app writes its own JSON access line; gunicorn's would be a second, unstructured one.
accesslog = None
control_socket_disable = True
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")

prometheus_dir = os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR", os.path.join(os.getcwd(), "instance", "prometheus")
)


def on_starting(server):
    """Wipe samples left by an earlier run, then refuse to start on a bad config."""
    import secrets

    # First: importing the app below creates metric files in this directory.
    shutil.rmtree(prometheus_dir, ignore_errors=True)
    os.makedirs(prometheus_dir, exist_ok=True)

    from api.config import Config, ConfigError

    try:
        config = Config()
        config.validate()
    except ConfigError as error:
        print(f"modelgate: {error}", file=sys.stderr)
        sys.exit(1)
    if not config.is_production:
        # Development secrets are random per start; set them here so every worker shares them.
        os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(48))
        os.environ.setdefault("JWT_SECRET_KEY", secrets.token_urlsafe(48))


def post_worker_init(worker):
    """Start the usage spool and load the models in each worker after the fork.

    The spool's flusher starts at once so that it adopts the spool of a worker
    that died before this one; torch's thread pools do not survive a fork.
    """
    from api.inference.registry import models
    from api.usage.spool import usage_spool

    with worker.wsgi.app_context():
        usage_spool()
    failed = models.load_all(worker.wsgi)
    if failed:
        worker.log.error("models not loaded (requests for them answer 503): %s", ", ".join(failed))


def worker_exit(server, worker):
    """Flush the worker's usage spool on an orderly exit (a killed one's is adopted later)."""
    from api.usage.spool import close_spool

    app = getattr(worker, "wsgi", None)
    if app is not None:
        close_spool(app)


def child_exit(server, worker):
    """Drop a dead worker's live gauges so /metrics stops counting them."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)

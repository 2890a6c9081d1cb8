"""Gunicorn settings: gthread workers, Prometheus multiprocess mode, no control socket.

Read by the master before any worker imports the app, which is why the Prometheus
directory is set in the environment here. Each value can be overridden by an
environment variable of the same name with a `GUNICORN_` prefix.
"""

import contextlib
import multiprocessing
import os
import shutil
import subprocess
import sys

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# Exported so each worker sizes torch's thread pool to its share of the cores.
workers = int(os.environ.setdefault("GUNICORN_WORKERS", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = 20
keepalive = 5  # above nginx's upstream keepalive_timeout (nginx/modelgate.conf)
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
    """Wipe samples left by an earlier run, refuse to start on a bad config, set up malloc."""
    import secrets

    # First: importing the app below creates metric files in this directory.
    shutil.rmtree(prometheus_dir, ignore_errors=True)
    os.makedirs(prometheus_dir, exist_ok=True)

    from api.config import Config, ConfigError
    from api.process.memory import return_large_blocks

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
    start_model_server(config)
    start_handler_models(config)
    global ready_announced
    ready_announced = multiprocessing.Value("b", 0)  # shared with every worker forked below
    return_large_blocks()  # before the workers fork: each inherits it (see api/process/memory.py)


model_server = None  # the supervisor of this master's model server, when there is one
ready_announced = None  # set once the first worker has said that the service answers


def start_model_server(config):
    """One model process for the host's embedding models, fed by every worker.

    MODEL_SERVER=off keeps a copy of each model in every worker instead. The socket
    lives in a private (0700) directory of its own, so only this user can reach it.
    """
    global model_server
    import tempfile

    from api.runtime.specs import parse_model_specs
    from api.runtime.supervisor import start_supervisor

    wanted = any(
        spec.task == "embedding" and not spec.upstream for spec in parse_model_specs(config.MODELS)
    )
    if not wanted or os.environ.get("MODEL_SERVER", "on") == "off":
        return
    folder = tempfile.mkdtemp(prefix="modelgate-models-")
    os.environ["MODEL_SERVER_SOCKET"] = os.path.join(folder, "models.sock")
    model_server = start_supervisor(os.environ["MODEL_SERVER_SOCKET"])


handler_supervisors = []  # one per handler model (issue 26)


def start_handler_models(config):
    """One supervised process per handler model, each on a socket in a private (0700) folder.

    The workers find the folder in HANDLER_SOCKET_DIR (set here, before they fork).
    """
    import tempfile

    from api.runtime.handlers.client import socket_path
    from api.runtime.handlers.supervisor import start
    from api.runtime.specs import parse_model_specs

    wanted = [spec.id for spec in parse_model_specs(config.MODELS) if spec.task == "handler"]
    if not wanted:
        return
    # Their declarations first, in a child: a bad one stops the start, naming the field.
    command = [sys.executable, "-m", "api.runtime.handlers.server", "--check"]
    if subprocess.run(command, check=False).returncode != 0:  # noqa: S603 - our own module
        sys.exit(1)
    folder = tempfile.mkdtemp(prefix="modelgate-handlers-")
    os.environ["HANDLER_SOCKET_DIR"] = folder
    for model_id in wanted:
        handler_supervisors.append(start(model_id, socket_path(folder, model_id)))


def on_exit(server):
    """Stop the model server and the handler models with the master."""
    for supervisor in handler_supervisors:
        supervisor.terminate()
    for supervisor in handler_supervisors:
        with contextlib.suppress(subprocess.TimeoutExpired, ChildProcessError):
            supervisor.wait(timeout=10)
    if handler_supervisors:
        shutil.rmtree(os.environ["HANDLER_SOCKET_DIR"], ignore_errors=True)
    if model_server is not None:
        model_server.terminate()
        # The master's own wait may reap it first; if it is slow, it ends with us anyway.
        with contextlib.suppress(subprocess.TimeoutExpired, ChildProcessError):
            model_server.wait(timeout=10)
        shutil.rmtree(os.path.dirname(os.environ["MODEL_SERVER_SOCKET"]), ignore_errors=True)


def post_worker_init(worker):
    """Start the usage spool and load the models in each worker after the fork.

    The spool's flusher starts at once so that it adopts the spool of a worker
    that died before this one; torch's thread pools do not survive a fork. With a
    model server, an embedding model's "load" waits for the server to answer.
    """
    from api.runtime.registry import models
    from api.usage.spool import usage_spool

    with worker.wsgi.app_context():
        usage_spool()
    failed = models.load_all(worker.wsgi)
    if failed:
        worker.log.error("models not loaded (requests for them answer 503): %s", ", ".join(failed))
    announce_ready(worker, failed)


def announce_ready(worker, failed):
    """Say once per start, with the URL, that the service answers: "Listening" comes earlier.

    The first worker to load its models says it; it accepts its first request right
    after. The line repeats what /readyz answers then.
    """
    from api.config import served_url
    from api.health.service import check_dependencies

    if ready_announced is None:
        return
    with ready_announced.get_lock():
        if ready_announced.value:
            return
        ready_announced.value = 1
    with worker.wsgi.app_context():
        checks = check_dependencies()
    url = served_url(bind)
    down = [name for name, state in checks.items() if state != "ok"]
    if down:
        worker.log.warning(
            "modelgate answers at %s but is not ready (/readyz: 503): %s unreachable",
            url,
            ", ".join(down),
        )
        return
    missing = f"; models not loaded: {', '.join(failed)}" if failed else ""
    worker.log.info("modelgate is ready at %s (/readyz: 200)%s", url, missing)


def worker_exit(server, worker):
    """Flush the worker's usage spool on an orderly exit (a killed one's is adopted later),
    close its database connections, then leave without the interpreter's teardown.

    Called from the `finally` of gunicorn's worker, with the `SystemExit` it is ending
    on still in flight: its code is the one the worker exits with. A worker that loaded
    torch would otherwise spend about 3 s in C++ destructors before the master (and a
    deploy waiting on it) sees it go (api/process/ending.py).
    """
    from api.process.ending import exit_code, exit_now
    from api.usage.spool import close_spool

    app = getattr(worker, "wsgi", None)
    if app is not None:
        close_spool(app)
        with contextlib.suppress(Exception), app.app_context():
            from api.extensions import db

            db.engine.dispose()
    exit_now(exit_code(sys.exc_info()[1]))


def child_exit(server, worker):
    """Drop a dead worker's live gauges so /metrics stops counting them."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)

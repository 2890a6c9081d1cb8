"""Several machines: one API host and one model host (`role = "model"`), on loopback.

The model host (sshd on 127.0.0.3) runs the same release with a handler model and a
database of its own (SQLite under shared/instance, Redis database 14); the API host (sshd
on 127.0.0.2, PostgreSQL, behind nginx) names that model as an Open Inference Protocol
upstream, with the token `fab service-token` minted on the model host. A user's calls go
through nginx and the API host to the model host; the usage is the user's on the API host.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
import uuid
from pathlib import Path

import psycopg
import redis
import requests
import urllib3

from deploy.nginx_site import Site, upstream_states
from tests.deploy.hosts import HOSTS, checkout, fab, output, stop_app, write_env, write_settings
from tests.nginx.server import API, NGINX, run_nginx, self_signed
from tests.services import REDIS_URL, free_port
from tests.tokens.conftest import make_account

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
API_HOST, MODEL_HOST = HOSTS
MODEL = "vectors"  # tests/handlers/sample_handler.py's Vectors: the sum of x, times k
MODEL_REDIS = "redis://127.0.0.1:6379/14"  # the model host's own: user ids differ there


def current(root: Path) -> str:
    return os.path.basename(os.readlink(root / "current"))


def user_token(database: str) -> str:
    from api import create_app
    from api.config import TestConfig
    from api.extensions import db

    app = create_app(TestConfig(SQLALCHEMY_DATABASE_URI=database))
    token = make_account(app, "far@example.org").mint("far", scopes=("predict",))["token"]
    with app.app_context():
        db.engine.dispose()
    return token


def wait_ready(base: str, headers: dict[str, str], seconds: float = 60) -> None:
    """Until the API host finds the model ready on the model host (its process may load)."""
    deadline = time.monotonic() + seconds
    while True:
        answer = requests.get(
            f"{base}/v2/models/{MODEL}/ready", headers=headers, verify=False, timeout=10
        )
        if answer.status_code == 200 or time.monotonic() > deadline:
            assert answer.status_code == 200, answer.text
            return
        time.sleep(0.5)


def rows(query: str, connect, count: int, seconds: float = 15) -> list[tuple]:
    """The rows `query` finds once there are `count` (usage is written off the call's path)."""
    deadline = time.monotonic() + seconds
    while True:
        with contextlib.closing(connect()) as connection:
            found = connection.execute(query).fetchall()
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_an_api_host_serves_a_model_host_s_handler_model_as_an_upstream(
    tmp_path, sshd, deploy_user, deploy_area, live_database, redis_db
):
    binds = {host: f"{host}:{free_port()}" for host in HOSTS}
    roots = {host: deploy_area / f"root-{host}" for host in HOSTS}
    envs = {host: tmp_path / f"env-{host}" for host in HOSTS}
    model_db = roots[MODEL_HOST] / "shared" / "instance" / "model-host.db"
    write_env(
        envs[MODEL_HOST], database=f"sqlite:///{model_db}", bind=binds[MODEL_HOST],
        root=roots[MODEL_HOST], models=f"{MODEL}=handler:tests.handlers.sample_handler:Vectors",
        redis=MODEL_REDIS, extra="INFERENCE_PER_USER=32\n",
    )  # fmt: skip
    hosts = {
        host: {"root": str(roots[host]), "bind": binds[host], "env_file": str(envs[host])}
        for host in HOSTS
    }
    hosts[MODEL_HOST]["role"] = "model"
    cert, key = self_signed(tmp_path)
    https_port = free_port()
    site = Site(
        api_domain=API,
        app_domain="app.modelgate.test",
        upstreams=(binds[API_HOST],),  # the API host only: nginx never sees a model host
        cert=cert,
        key=key,
        web_root=str(tmp_path),
        cors_origins=("https://app.modelgate.test",),
        access_log=str(tmp_path / "access.json"),
        http_listen=f"127.0.0.1:{free_port()}",
        https_listen=f"127.0.0.1:{https_port}",
    )
    proxy = tmp_path / "nginx"
    nginx_cli = f"{NGINX} -c {proxy}/nginx.conf -p {proxy}"
    upstreams = proxy / "site" / "snippets" / "upstreams.conf"
    nginx = {
        "host": API_HOST,
        "upstreams": str(upstreams),
        "reload": f"{nginx_cli} -t -q && {nginx_cli} -s reload",
    }
    ssh = {**sshd, "user": deploy_user}
    source = checkout(tmp_path / "source")
    settings = write_settings(tmp_path / "deploy.toml", ssh, source, hosts, keep=2, nginx=nginx)
    model_redis = redis.Redis.from_url(MODEL_REDIS)
    model_redis.flushdb()
    base = f"https://127.0.0.1:{https_port}"
    try:
        with run_nginx(site, proxy):
            provisioned = fab(settings, "provision")
            assert provisioned.returncode == 0, output(provisioned)

            # The model host first: its own database is migrated by its own deploy, and the
            # deploy never touches nginx for it (it is in no upstreams file to find).
            model_first = fab(settings, "deploy", hosts=(MODEL_HOST,))
            assert model_first.returncode == 0, output(model_first)
            assert f"migrating the database from {MODEL_HOST}" in model_first.stdout
            assert "nginx" not in model_first.stdout, model_first.stdout

            minted = fab(settings, "service-token", "--name", "api", hosts=(MODEL_HOST,))
            assert minted.returncode == 0, output(minted)
            service_key = minted.stdout.strip().splitlines()[-1]
            assert service_key.startswith("mg_") and "api@service.invalid" in minted.stdout

            upstream = f"http://{binds[MODEL_HOST]} model={MODEL} key_env=MODEL_HOST_KEY"
            write_env(
                envs[API_HOST], database=live_database, bind=binds[API_HOST],
                root=roots[API_HOST], models=f"{MODEL}=upstream:oip:{upstream} timeout_s=10",
                redis=REDIS_URL,
                extra=f"MODEL_HOST_KEY={service_key}\n",
            )  # fmt: skip
            api_first = fab(settings, "deploy", hosts=(API_HOST,))
            assert api_first.returncode == 0, output(api_first)
            assert api_first.stdout.count("migrating the database") == 1

            # A user of the API host calls the model through nginx, with their own token.
            headers = {"Host": API, "Authorization": f"Bearer {user_token(live_database)}"}
            wait_ready(base, headers)
            traces = [uuid.uuid4().hex, uuid.uuid4().hex]
            infer = {
                "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2, 2],
                            "data": [1, 2, 3, 4]}],
            }  # fmt: skip
            answer = requests.post(
                f"{base}/v2/models/{MODEL}/infer", json=infer, verify=False, timeout=30,
                headers={**headers, "X-Trace-Id": traces[0]},
            )  # fmt: skip
            assert answer.status_code == 200, answer.text
            assert answer.json()["model_name"] == MODEL
            (out,) = answer.json()["outputs"]
            assert (out["name"], out["data"]) == ("sum", [10.0])
            predicted = requests.post(
                f"{base}/v1/models/{MODEL}/predict", json={"x": [[1, 1, 1], [2, 2, 2]]},
                verify=False, timeout=30, headers={**headers, "X-Trace-Id": traces[1]},
            )  # fmt: skip
            assert predicted.status_code == 200, predicted.text
            assert predicted.json()["outputs"] == {"sum": 9.0}

            # The usage is the user's, on the API host's database; the model host counts the
            # same calls (same trace ids) against the service account, in its own database.
            listed = ", ".join(f"'{trace}'" for trace in traces)
            on_api = rows(
                "select u.email, r.model, r.status from inference_records r join users u "
                f"on u.id = r.user_id where r.trace_id in ({listed}) order by r.id",
                lambda: psycopg.connect(live_database.replace("+psycopg", "")),
                count=2,
            )
            assert on_api == [("far@example.org", MODEL, 200)] * 2
            on_model = rows(
                "select u.email, r.model, r.status from inference_records r join users u "
                f"on u.id = r.user_id where r.trace_id in ({listed}) and r.model = '{MODEL}' "
                "order by r.id",  # not the metadata GET the API host's predict made first
                lambda: sqlite3.connect(model_db),
                count=2,
            )
            assert on_model == [("api@service.invalid", MODEL, 200)] * 2

            # A redeploy of the model host alone: migrated again (its own database), nginx
            # untouched, and the API host reaches the new release.
            before = current(roots[MODEL_HOST])
            model_again = fab(settings, "deploy", hosts=(MODEL_HOST,))
            assert model_again.returncode == 0, output(model_again)
            assert f"migrating the database from {MODEL_HOST}" in model_again.stdout
            assert current(roots[MODEL_HOST]) > before
            wait_ready(base, headers)
            again = requests.post(
                f"{base}/v1/models/{MODEL}/predict", json={"x": [[1], [2]]},
                verify=False, timeout=30, headers=headers,
            )  # fmt: skip
            assert again.status_code == 200 and again.json()["outputs"] == {"sum": 3.0}

            assert upstream_states(upstreams.read_text()) == {binds[API_HOST]: True}
            status = fab(settings, "status")
            assert status.returncode == 0, output(status)
            assert "a model host (in no nginx rotation)" in status.stdout
            assert "in nginx's rotation" in status.stdout
            drained = fab(settings, "drain", hosts=(MODEL_HOST,))
            assert drained.returncode != 0 and "is a model host" in output(drained)
    finally:
        for root in roots.values():
            stop_app(root)
        model_redis.flushdb()
        model_redis.close()

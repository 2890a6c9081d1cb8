"""The shipped Prometheus config and alert rules: promtool's checks and unit tests, and a real
Prometheus (Debian's) scraping a live gunicorn with 2 workers through that config."""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import pytest
import requests
import yaml

from tests.services import ROOT, free_port, gunicorn
from tests.tokens.test_live import mint_token

SHIPPED = ROOT / "deploy" / "prometheus"


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is missing (Debian's prometheus package; .ci/run installs it)")
    return found


def test_promtool_checks_the_config_and_rules_and_runs_their_unit_tests():
    promtool = tool("promtool")
    for command in (
        ["check", "config", "prometheus.yml"],
        ["check", "rules", "rules/modelgate.yml"],
        ["test", "rules", "tests/modelgate.test.yml"],
    ):
        done = subprocess.run(
            [promtool, *command], cwd=SHIPPED, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "SUCCESS" in done.stdout + done.stderr


def query(base: str, expression: str) -> list[dict]:
    answer = requests.get(f"{base}/api/v1/query", params={"query": expression}, timeout=5)
    answer.raise_for_status()
    return answer.json()["data"]["result"]


def test_a_real_prometheus_scrapes_both_workers_with_the_shipped_config(
    tmp_path, live_database, redis_url, redis_db
):
    prometheus = tool("prometheus")
    token, _, _ = mint_token(live_database)
    env = {
        "DATABASE_URL": live_database,
        "REDIS_URL": redis_url,
        "MODELS": "all-minilm-l6-v2",
        "RATE_LIMIT_DEFAULT": "10000/minute",
    }
    config_dir = tmp_path / "prometheus-config"  # not "prometheus": gunicorn wipes that one
    shutil.copytree(SHIPPED, config_dir)
    config = yaml.safe_load((config_dir / "prometheus.yml").read_text())
    config["global"]["scrape_interval"] = "1s"  # the shipped 15 s, shortened for the test
    (config_dir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    with gunicorn(env, tmp_path, workers=2) as base:
        target = base.removeprefix("http://")
        (config_dir / "targets" / "test.json").write_text(
            json.dumps([{"targets": [target], "labels": {"env": "test"}}])
        )
        for _ in range(6):  # several calls, so both workers are likely to answer some
            with requests.Session() as session:
                embedded = session.post(
                    f"{base}/v1/embeddings",
                    headers={"Authorization": f"Bearer {token}"},
                    json={"input": "A frog in a well."},
                    timeout=30,
                )
                assert embedded.status_code == 200
        server = subprocess.Popen(
            [
                prometheus,
                f"--config.file={config_dir / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / "prometheus.log").open("wb"),
        )
        api = f"http://127.0.0.1:{port}"
        try:
            found: dict[str, list[dict]] = {}
            expressions = {
                "up": 'up{job="modelgate",env="test"} == 1',
                "requests": 'http_server_requests_total{route="/v1/embeddings",status="200"}',
                "latency": "http_server_request_duration_seconds_count",
                "batches": 'inference_batch_size_count{model="all-minilm-l6-v2"}',
                "database": 'dependency_up{dependency="database"} == 1',
                "rules": "ALERTS",  # present or not, the query must work
            }
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    found = {name: query(api, expr) for name, expr in expressions.items()}
                except requests.RequestException:
                    time.sleep(0.5)
                    continue
                if all(
                    found[name] for name in ("up", "requests", "latency", "batches", "database")
                ):
                    break
                time.sleep(0.5)
            assert found.get("up"), found
            assert sum(float(item["value"][1]) for item in found["requests"]) == 6
            assert found["batches"] and found["latency"] and found["database"]
            rules = requests.get(f"{api}/api/v1/rules", timeout=5).json()["data"]["groups"]
            assert {group["name"] for group in rules} == {"modelgate-slo", "modelgate-health"}
        finally:
            server.terminate()
            server.wait(timeout=20)

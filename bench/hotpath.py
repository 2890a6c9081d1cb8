"""The per-call cost table of issue 10, measured with wrk (a C load generator) in one run.

Starts gunicorn (2 workers, gthread) on PostgreSQL and Redis, as production runs
it, and measures side by side:

1. `GET /healthz` and `GET /v1/models` with an API token (auth + limit + meter),
   8 connections: requests/s and p50, their ratio and the p50 the call adds;
2. `POST /v1/embeddings` with one sentence each, 32 connections, against the raw
   model in-process at batch 32: sentences/s, p99, their ratio;
3. the same load with batching off (`BATCH_MAX_SIZE=1`): the on/off ratio;
4. one connection: the server's p50 against the raw model's latency at batch 1.

wrk is installed from Debian when missing. Every load is bounded in time
(`--seconds`, after a warm-up) and targets 127.0.0.1 only. This machine's speed
drifts by 2-3x from minute to minute, so the loads compared in a ratio run in
alternating rounds (`--rounds`) and each figure is the median of its rounds.

    python bench/hotpath.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import bench_database
from tests.services import REDIS_URL, gunicorn

EMBEDDING_MODEL = "all-minilm-l6-v2"
SENTENCE = "The {n}th sister spun gold from straw at midnight."
POST_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(token)s"
local n = 0
request = function()
  n = n + 1
  local body = '{"input": "' .. string.format("%(sentence)s", n) .. '"}'
  return wrk.format(nil, nil, nil, body)
end
"""
GOALS = {
    "models/healthz throughput": ("≥", 0.50),
    "added p50 ms": ("≤", 2.0),
    "embeddings/raw batch 32": ("≥", 0.60),
    "embeddings p99 ms": ("≤", 250.0),
    "batching on/off": ("≥", 2.5),
    "one connection / raw batch 1": ("≤", 1.10),
}


@dataclass
class Load:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def ensure_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=False, env=env)
        path = shutil.which("wrk")
    if path is None:
        sys.exit("wrk is not installed and could not be installed (apt-get install wrk)")
    return path


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(url: str, *, connections: int, seconds: int, script: str | None = None) -> Load:
    """Run wrk against `url` (after a 2-second warm-up) and parse its report."""
    threads = str(min(2, connections))
    base = ["wrk", "-t", threads, "-c", str(connections), "--latency", "--timeout", "10s"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(script or "")
    extra = ["-s", lua.name] if script else []
    subprocess.run([*base, "-d", "2s", *extra, url], capture_output=True, check=True)
    out = subprocess.run(
        [*base, "-d", f"{seconds}s", *extra, url], capture_output=True, text=True, check=True
    ).stdout
    os.unlink(lua.name)
    if "Requests/sec" not in out or "50%" not in out:
        sys.exit(f"wrk printed no figures for {url}:\n{out}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return Load(
        rps=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        p50_ms=_ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)),  # type: ignore[union-attr]
        p99_ms=_ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)),  # type: ignore[union-attr]
        errors=(int(errors.group(1)) if errors else 0)
        + (sum(map(int, socket.groups())) if socket else 0),
    )


def alternate(rounds: int, **loads: Callable[[], Load]) -> dict[str, Load]:
    """Run each load once per round, in turn; each figure is the median of its rounds."""
    runs: dict[str, list[Load]] = {name: [] for name in loads}
    for _ in range(rounds):
        for name, load in loads.items():
            runs[name].append(load())
    return {
        name: Load(
            rps=statistics.median(r.rps for r in results),
            p50_ms=statistics.median(r.p50_ms for r in results),
            p99_ms=statistics.median(r.p99_ms for r in results),
            errors=sum(r.errors for r in results),
        )
        for name, results in runs.items()
    }


def load_raw_model():  # type: ignore[no-untyped-def]
    """The embedding model in this process, with all the cores (the workers share them)."""
    from api.runtime.devices import configure_torch
    from api.runtime.models.embedding import EmbeddingModel
    from api.runtime.specs import locate_minilm

    os.environ["GUNICORN_WORKERS"] = "1"
    configure_torch()
    return EmbeddingModel.load(EMBEDDING_MODEL, locate_minilm())


def raw_round(model, batch_size: int, seconds: float) -> Load:  # type: ignore[no-untyped-def]
    """The raw model for `seconds`: sentences/s as `rps`, the median batch latency as p50."""
    from bench.inference_engine import measure_batch_size

    rate, median_ms, p95_ms = measure_batch_size(model, batch_size, seconds)
    return Load(rps=rate, p50_ms=median_ms, p99_ms=p95_ms, errors=0)  # p95: not compared


def serve(database: str, tmp: str, **settings: str):
    env = {
        "DATABASE_URL": database,
        "REDIS_URL": REDIS_URL,
        "MODELS": EMBEDDING_MODEL,
        "RATE_LIMIT_DEFAULT": "100000000/minute",
        "INFERENCE_PER_USER": "64",
        "EMBEDDING_CACHE_TTL_S": "0",  # measure the model, not the cache
        **settings,
    }
    return gunicorn(env, Path(tmp), workers=2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="per round and load")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    ensure_wrk()
    seconds, rounds = args.seconds, args.rounds
    figures: dict[str, float] = {}
    model = load_raw_model()
    with bench_database() as (database, token):
        script = POST_SCRIPT % {"token": token, "sentence": SENTENCE.replace("{n}", "%d")}
        models_lua = f'wrk.headers["Authorization"] = "Bearer {token}"\n'
        with (
            tempfile.TemporaryDirectory() as tmp_on,
            tempfile.TemporaryDirectory() as tmp_off,
            serve(database, tmp_on) as base,
            serve(database, tmp_off, BATCH_MAX_SIZE="1") as unbatched,
        ):
            url = f"{base}/v1/embeddings"
            loads = alternate(
                rounds,
                health=lambda: wrk(f"{base}/healthz", connections=8, seconds=seconds),
                listed=lambda: wrk(
                    f"{base}/v1/models", connections=8, seconds=seconds, script=models_lua
                ),
                on=lambda: wrk(url, connections=32, seconds=seconds, script=script),
                off=lambda: wrk(
                    f"{unbatched}/v1/embeddings", connections=32, seconds=seconds, script=script
                ),
                raw32=lambda: raw_round(model, 32, seconds),
                single=lambda: wrk(url, connections=1, seconds=seconds, script=script),
                raw1=lambda: raw_round(model, 1, seconds),
            )
    health, listed, on, off, single = (
        loads[k] for k in ("health", "listed", "on", "off", "single")
    )
    raw = {"batch32_per_s": loads["raw32"].rps, "batch1_ms": loads["raw1"].p50_ms}

    rows = [
        ("GET /healthz, 8 connections", health),
        ("GET /v1/models with a token, 8 connections", listed),
        ("POST /v1/embeddings, batching on, 32 connections", on),
        ("POST /v1/embeddings, batching off, 32 connections", off),
        ("POST /v1/embeddings, 1 connection", single),
    ]
    print(f"{'load':<52} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for name, load in rows:
        print(
            f"{name:<52} {load.rps:>9.1f} {load.p50_ms:>8.2f} {load.p99_ms:>8.2f} {load.errors:>7}"
        )
    print(
        f"raw model in-process: {raw['batch32_per_s']:.1f} sentences/s at batch 32, "
        f"{raw['batch1_ms']:.2f} ms at batch 1"
    )
    figures["models/healthz throughput"] = listed.rps / health.rps
    figures["added p50 ms"] = listed.p50_ms - health.p50_ms
    figures["embeddings/raw batch 32"] = on.rps / raw["batch32_per_s"]
    figures["embeddings p99 ms"] = on.p99_ms
    figures["batching on/off"] = on.rps / off.rps
    figures["one connection / raw batch 1"] = single.p50_ms / raw["batch1_ms"]
    print(f"\n{'measure':<32} {'value':>8}  goal")
    met = True
    for name, value in figures.items():
        sign, goal = GOALS[name]
        ok = value >= goal if sign == "≥" else value <= goal
        met &= ok
        print(f"{name:<32} {value:>8.2f}  {sign} {goal}  {'met' if ok else 'NOT MET'}")
    errors = sum(load.errors for _, load in rows)
    print(f"\nerrors: {errors}; {'every goal met' if met else 'a goal is NOT met'}")
    return 0 if met and errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

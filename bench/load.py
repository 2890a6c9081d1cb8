"""Load through the whole production path: a user's mix of calls, figures per endpoint.

`make load` (a short run) and `make soak` (10 minutes at 80 % of the measured capacity)
start nginx, gunicorn (2 workers), a Celery worker, PostgreSQL (a scratch database) and
Redis on loopback, then:

1. measure capacity: the highest arrival rate answered without a shed call (503
   overloaded) or an error, stepping up 15 % at a time from 60 % of what 4 users
   calling back to back get (`measure_capacity`);
2. run the mix at `--fraction` of that rate for `--seconds`, sampling each server
   process's memory once a second; the memory growth is counted from the end of the
   first fifth of the run (at most a minute: warm-up), to the end;
3. print calls, throughput, p50/p95/p99 and errors per endpoint (429s apart), the
   memory of each process at the start and end, and whether the batches finished.

Like OpenAI's client libraries, a call answered 503 "overloaded" (the model's queue
was full; it carries Retry-After) is tried again, at most twice: the `shed` column
counts those answers (a call's last one included), and a call is an error only if its
last try failed. A call's latency includes its retries.

Exit status 0 only with no error besides 429, every batch finished and every worker's
memory growth under `--max-growth`; otherwise the servers' logs (nginx, gunicorn, the
app's JSON lines, the Celery worker) are kept and their folder printed, and each error
line names its trace id to look for in them. The load generator is Python threads on
the same two cores: its own cost is in the figures, which is why the capacity is
measured with it.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import urllib3

from api.batches.models import ACTIVE_STATUSES
from bench.common import percentile
from tests.conftest import scratch_database
from tests.load import Load, Mix, Result, live_account
from tests.services import REDIS_URL
from tests.stack import Stack, production, rss_kib

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
USERS = 32  # threads of the load at a rate: enough to keep arriving while calls wait
SETTINGS = {  # one account stands for many users: measure the service, not one user's limits
    "RATE_LIMIT_DEFAULT": "1000000/minute",
    "RATE_LIMIT_AUTH": "100000/minute",
    "INFERENCE_PER_USER": "64",
    "STREAMS_PER_USER": "64",
    "EMBEDDING_CACHE_TTL_S": "0",  # every sentence reaches the model
}


class Memory:
    """RSS of each gunicorn worker, sampled about once a second by the load."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.samples: dict[str, list[int]] = defaultdict(list)

    def sample(self) -> None:
        processes = {f"gunicorn worker {n + 1}": pid for n, pid in enumerate(self.stack.workers())}
        for name, pid in processes.items():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                self.samples[name].append(rss_kib(pid))


def table(results: list[Result], seconds: float) -> None:
    by_action: dict[str, list[Result]] = defaultdict(list)
    for result in results:
        by_action[result.action].append(result)
    print(
        f"{'endpoint':<12} {'calls':>7} {'per s':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}"
        f" {'429':>5} {'shed':>5} {'errors':>7}"
    )
    for action, rows in sorted(by_action.items()):
        times = sorted(r.seconds * 1000 for r in rows if not r.error and r.status != 429)
        figures = [percentile(times, f) if times else 0.0 for f in (0.5, 0.95, 0.99)]
        limited = sum(r.status == 429 for r in rows)
        shed = sum(r.shed for r in rows)
        errors = sum(r.error for r in rows)
        print(
            f"{action:<12} {len(rows):>7} {len(rows) / seconds:>7.1f} "
            + " ".join(f"{value:>8.1f}" for value in figures)
            + f" {limited:>5} {shed:>5} {errors:>7}"
        )


def batches_done(mix: Mix, timeout: float) -> int:
    """How many of the mix's batches have ended within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    done: set[str] = set()
    while time.monotonic() < deadline and len(done) < len(mix.batches):
        for batch in set(mix.batches) - done:
            if mix.get(f"/v1/batches/{batch}").json()["status"] not in ACTIVE_STATUSES:
                done.add(batch)
        time.sleep(1)
    return len(done)


def measure_capacity(mix: Mix, args: argparse.Namespace) -> float:
    """The highest arrival rate the service answers without shedding a call.

    A probe of 4 users back to back gives a first rate; then the mix arrives at 60 %
    of it, and 15 % more each step of `--step-seconds`, until a step sheds a call
    (503 overloaded), fails one, or falls behind its rate. Users arriving at a rate,
    not waiting for each other, are what the run that follows is made of.
    """
    probe = Load(mix, threads=4)
    with probe:
        time.sleep(args.step_seconds)
    base = len(probe.results) / args.step_seconds
    print(f"4 users back to back: {base:.1f} calls/s")
    capacity, rate = 0.0, base * 0.6
    while rate < base * 3:
        step = Load(mix, threads=USERS, rate=rate, seed=int(rate))
        started = time.monotonic()
        with step:
            time.sleep(args.step_seconds)
        achieved = len(step.results) / (time.monotonic() - started)
        shed = sum(r.shed for r in step.results)
        clean = not step.errors() and not shed and achieved >= 0.95 * rate
        print(f"\narriving at {rate:.1f} calls/s: {achieved:.1f} answered, {shed} shed, "
              f"{len(step.errors())} errors{'' if clean else ' (past capacity)'}")  # fmt: skip
        table(step.results, args.step_seconds)
        if not clean:
            break
        capacity = rate
        rate *= 1.15
    return capacity or base * 0.6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60, help="of the measured run")
    parser.add_argument("--step-seconds", type=float, default=20, help="of each capacity step")
    parser.add_argument("--fraction", type=float, default=0.8, help="of the capacity")
    parser.add_argument("--max-growth", type=float, default=0.10, help="of each worker's RSS")
    args = parser.parse_args()

    folder = tempfile.mkdtemp(prefix="modelgate-load-")  # removed unless the run fails
    with scratch_database("modelgate_load") as database:
        account = live_account(database)
        with production(
            Path(folder), database, REDIS_URL, models="all-minilm-l6-v2,storyteller", env=SETTINGS
        ) as stack:
            mix = Mix(stack, account, retries=2)
            capacity = measure_capacity(mix, args)
            print(f"\ncapacity: {capacity:.1f} calls/s")

            rate = capacity * args.fraction
            memory = Memory(stack)
            mix.batches.clear()
            run = Load(mix, threads=USERS, rate=rate, seed=2, on_sample=memory.sample)
            started = time.monotonic()
            with run:
                time.sleep(args.seconds)
            elapsed = time.monotonic() - started
            memory.sample()
            finished = batches_done(mix, timeout=120)
    warm = min(60, round(args.seconds / 5))  # samples are a second apart

    print(f"\nrun: {args.seconds:.0f} s at {rate:.1f} calls/s ({args.fraction:.0%} of capacity)")
    table(run.results, elapsed)
    print(f"achieved: {len(run.results) / elapsed:.1f} calls/s")
    print(f"batches: {finished} of {len(mix.batches)} finished")
    print(f"\n{'process':<20} {f'RSS at {warm} s MiB':>14} {'RSS end MiB':>12} {'growth':>7}")
    grew = False
    for name, samples in sorted(memory.samples.items()):
        first, last = samples[min(warm, len(samples) - 1)], samples[-1]
        growth = (last - first) / first
        grew |= growth >= args.max_growth
        print(f"{name:<20} {first / 1024:>14.1f} {last / 1024:>12.1f} {growth:>7.1%}")
    step = max(1, round(args.seconds / 10))  # ten points over the run
    print(f"\nRSS over time, MiB, every {step} s:")
    for name, samples in sorted(memory.samples.items()):
        print(f"{name:<20} " + " ".join(f"{kib / 1024:.0f}" for kib in samples[::step]))
    errors = run.errors()
    for error in errors[:5]:
        print(f"error: {error.action} {error.status} {error.detail} (trace {error.trace})")
    print(f"\nerrors besides 429: {len(errors)}; memory growth under {args.max_growth:.0%}: "
          f"{'yes' if not grew else 'NO'}")  # fmt: skip
    if errors or grew or finished < len(mix.batches):
        print(f"the servers' logs are kept in {folder}")
        return 1
    shutil.rmtree(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())

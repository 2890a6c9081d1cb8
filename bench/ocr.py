"""The OCR example through the whole stack against the handler in-process (issue 26), one run.

Starts gunicorn (2 workers, gthread) on PostgreSQL and Redis with `ocr-en` as the
only model (`models.ocr.handler:OCR`, in its own process as `make run` serves it),
mints an API token with the `predict` scope, and measures in alternating rounds:

1. one client posting images one after another (`-F image=@page.png`, multipart)
   against `OCR().predict` in this process at batch 1, image for image: the latency
   the stack adds, as a share of the model's own time;
2. eight concurrent clients against `OCR().predict` at batch 8: images per second
   and their ratio (and, for reference, at the handler's `max_batch_size`, 4: the
   largest batch the server forms).

The images are the accuracy run's clean renders (`models.ocr.evaluate.make_set`: one to
three lines of text, six fonts, fixed seed), sent as PNG; the model in this process gets
them decoded. Each setting reads `--images` images per round, `--rounds` rounds; the
figures are the sums over the rounds. The model process's resident memory is printed
after it loaded, after a warm-up call and after the run.

    python bench/ocr.py [--images 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# Set before torch loads, as the model process does: idle OpenMP threads here must not
# spin on the cores the model process needs between rounds.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import requests
from PIL import Image

from bench.common import bench_database, percentile
from tests.services import REDIS_URL, gunicorn

MODEL_ID = "ocr-en"
HANDLER = "models.ocr.handler:OCR"
GOALS = {
    "8 clients / in-process batch 8": ("≥", 0.80),
    "1 client: added latency / model": ("≤", 0.10),
}


@dataclass
class Run:
    """Images read in one setting: wall seconds, per-image latencies, failures."""

    images: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: int = 0

    def add(self, other: Run) -> None:
        self.images += other.images
        self.seconds += other.seconds
        self.latencies += other.latencies
        self.errors += other.errors

    @property
    def per_s(self) -> float:
        return self.images / self.seconds if self.seconds else 0.0


def sample_pages(count: int) -> tuple[list[Image.Image], list[bytes]]:
    """`count` rendered text images (decoded, for in-process) and their PNG bytes (to send)."""
    from models.ocr.evaluate import make_set

    images = [clean for _, clean, _ in make_set(count, seed=26)]
    pngs = []
    for image in images:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        pngs.append(buffer.getvalue())
    return images, pngs


def in_process(model: Any, images: list[Image.Image], batch: int) -> Run:
    """`model.predict` over the images, `batch` at a time; a batch's time is each item's."""
    run = Run()
    started = time.perf_counter()
    for first in range(0, len(images), batch):
        items = [{"image": image} for image in images[first : first + batch]]
        call = time.perf_counter()
        model.predict(items)
        run.latencies += [time.perf_counter() - call] * len(items)
    run.seconds = time.perf_counter() - started
    run.images = len(images)
    return run


def through_stack(url: str, token: str, pngs: list[bytes], clients: int) -> Run:
    """`clients` threads posting the PNGs as multipart until every one is read."""
    run, lock = Run(), threading.Lock()
    pending = list(enumerate(pngs))

    def client() -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        while True:
            with lock:
                if not pending:
                    return
                n, png = pending.pop(0)
            call = time.perf_counter()
            response = session.post(
                url, files={"image": (f"page{n}.png", png, "image/png")}, timeout=600
            )
            latency = time.perf_counter() - call
            ok = response.status_code == 200 and response.json()["usage"]["units"] == 1
            with lock:
                run.latencies.append(latency)
                run.errors += not ok
                if not ok:
                    print(f"  {response.status_code}: {response.text[:200]}", file=sys.stderr)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    run.seconds = time.perf_counter() - started
    run.images = len(pngs)
    return run


def model_process_rss_mb(port: int) -> float:
    """The resident memory of this gunicorn's `ocr-en` model process (not its supervisor)."""
    bind = f"GUNICORN_BIND=127.0.0.1:{port}".encode()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
            words = command.split(b"\0")
            if b"api.runtime.handlers.server" not in words or b"--supervise" in words:
                continue  # not a model process, or its supervisor
            if MODEL_ID.encode() not in words:
                continue
            if bind not in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                continue
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        kilobytes = next(line.split()[1] for line in status.splitlines() if line[:6] == "VmRSS:")
        return int(kilobytes) / 1024
    return float("nan")


def wait_until_loaded(base: str, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        state = requests.get(f"{base}/readyz", timeout=5).json().get("models", {}).get(MODEL_ID)
        if state == "ready":
            return
        if state and state.startswith("failed"):
            sys.exit(f"{MODEL_ID} failed to load: {state}")
        time.sleep(1)
    sys.exit(f"{MODEL_ID} did not load in {seconds:.0f} s")


def serve(database: str, tmp: str):
    env = {
        "DATABASE_URL": database,
        "REDIS_URL": REDIS_URL,
        "MODELS": f"{MODEL_ID}=handler:{HANDLER}",
        "RATE_LIMIT_DEFAULT": "100000000/minute",
        "INFERENCE_PER_USER": "64",  # eight clients of one user
        "INFERENCE_TIMEOUT_S": "600",  # eight images queue behind each other
    }
    return gunicorn(env, Path(tmp), workers=2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8, help="images per setting and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import torch

    from models.ocr.handler import OCR

    images, pngs = sample_pages(args.images)
    model = OCR()
    model.setup("cpu")
    model.predict([{"image": images[0]}])  # first-call costs stay out of the figures
    batch = model.max_batch_size  # what the server's batcher forms at most
    largest = f"in-process batch {batch}"
    names = ("in-process batch 1", "1 client", "in-process batch 8", "8 clients", largest)
    runs = {name: Run() for name in names}
    with (
        bench_database(scopes=("predict",)) as (database, token),
        tempfile.TemporaryDirectory() as tmp,
        serve(database, tmp) as base,
    ):
        port = int(base.rsplit(":", 1)[1])
        url = f"{base}/v1/models/{MODEL_ID}/predict"
        wait_until_loaded(base)
        rss = {"loaded": model_process_rss_mb(port)}
        through_stack(url, token, pngs[:1], 1)
        rss["after a warm-up call"] = model_process_rss_mb(port)
        for round_ in range(1, args.rounds + 1):
            runs["in-process batch 1"].add(in_process(model, images, 1))
            runs["1 client"].add(through_stack(url, token, pngs, 1))
            runs["in-process batch 8"].add(in_process(model, images, 8))
            runs["8 clients"].add(through_stack(url, token, pngs, 8))
            runs[largest].add(in_process(model, images, batch))
            rss[f"after round {round_}"] = model_process_rss_mb(port)
            print(f"round {round_}/{args.rounds} done", file=sys.stderr)

    print(
        f"ocr-en: {len(images)} rendered pages x {args.rounds} rounds per setting; "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads in this process"
    )
    print(f"{'setting':<22} {'images':>6} {'images/s':>9} {'p50 s':>7} {'max s':>7} {'errors':>6}")
    for name, run in runs.items():
        ordered = sorted(run.latencies)
        print(
            f"{name:<22} {run.images:>6} {run.per_s:>9.3f} {percentile(ordered, 0.5):>7.2f} "
            f"{ordered[-1]:>7.2f} {run.errors:>6}"
        )
    model_s = statistics.fmean(runs["in-process batch 1"].latencies)
    stack_s = statistics.fmean(runs["1 client"].latencies)
    print(
        f"1 client: {stack_s:.3f} s per image through the stack, {model_s:.3f} s in-process "
        f"(mean of the same images): {1000 * (stack_s - model_s):+.0f} ms"
    )
    print("model process RSS MB: " + ", ".join(f"{k} {v:.0f}" for k, v in rss.items()))
    figures = {
        "8 clients / in-process batch 8": runs["8 clients"].per_s
        / runs["in-process batch 8"].per_s,
        "1 client: added latency / model": (stack_s - model_s) / model_s,
    }
    single = runs["1 client"].per_s / runs["in-process batch 1"].per_s
    served = runs["8 clients"].per_s / runs[largest].per_s
    print(f"1 client / in-process batch 1 throughput: {single:.2f}")
    print(f"8 clients / in-process batch {batch} (the server's max_batch_size): {served:.2f}")
    print(f"\n{'measure':<34} {'value':>7}  goal")
    met = True
    for name, value in figures.items():
        sign, goal = GOALS[name]
        ok = value >= goal if sign == "≥" else value <= goal
        met &= ok
        print(f"{name:<34} {value:>7.2f}  {sign} {goal}  {'met' if ok else 'NOT MET'}")
    errors = sum(run.errors for run in runs.values())
    print(f"\nerrors: {errors}; {'every goal met' if met else 'a goal is NOT met'}")
    return 0 if met and errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

"""Fuzz the OpenAPI document against a live server: schemathesis, every phase and check.

`python -m tests.contract.fuzz` runs the long profile (`make fuzz`); the test suite
runs the bounded one (`tests/contract/test_fuzz.py`). Each run makes a PostgreSQL
database of its own with one verified admin and an API token carrying every scope,
starts gunicorn (2 workers, real Redis, the built web app beside the API), and runs
schemathesis twice: once with the API token, once with a login session that logs in
again whenever it is told 401 (the fuzzer may log itself out). Settings live in
`tests/contract/schemathesis-{token,session}.toml`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

from api import create_app
from api.auth.models import User
from api.config import TestConfig
from api.extensions import db
from tests.auth.conftest import PASSWORD
from tests.conftest import scratch_database
from tests.services import REDIS_URL, gunicorn
from tests.tokens.conftest import make_account

HERE = Path(__file__).resolve().parent
WEB_DIST = HERE.parents[1] / "web" / "dist"
EMAIL = "fuzz@example.org"
HANDLER_MODEL, HANDLER = "fuzzable", "tests.handlers.sample_handler:Fuzzable"
PROFILES = {
    # Examples per operation, and a time budget per credential kind (seconds). Given a
    # budget, schemathesis repeats its fuzzing and stateful phases until the budget is
    # spent, however fast the machine; without one each phase makes one pass over every
    # operation, so the bounded profile is bounded by count (docs/decisions.md).
    "bounded": {"max_examples": 12, "max_time": None},
    "long": {"max_examples": 300, "max_time": 900},
}
# How long one schemathesis run may take before it counts as hung (seconds).
RUN_TIMEOUT = 1800
# Limits high enough that the fuzzer tests the API, not its own rate limit.
SERVER_ENV = {
    # A small handler model (issue 26) so its exact predict operation is fuzzed too.
    "MODELS": f"all-minilm-l6-v2,storyteller,{HANDLER_MODEL}=handler:{HANDLER}",
    "RATE_LIMIT_DEFAULT": "1000000/minute",
    "RATE_LIMIT_AUTH": "1000000/minute",
    "LOGIN_FAILURE_LIMIT": "1000000 per hour",
    "LOGIN_ACCOUNT_FAILURE_LIMIT": "1000000 per hour",
    "AUTH_FAILURE_LIMIT": "1000000/minute",
    "TOKEN_CREATE_LIMIT": "1000000/hour",
    "EMAIL_ACTION_LIMIT": "1 per hour",
    "INFERENCE_PER_USER": "16",
    "LOG_LEVEL": "WARNING",
    # The built web app beside the API, as under `make run` (when built): its routes
    # must leave every `/v1` path alone.
    "WEB_DIST": str(WEB_DIST),
}


@contextlib.contextmanager
def fuzz_database() -> Iterator[tuple[str, str]]:
    """A migrated database with a verified admin and an all-scope token: (url, token)."""
    with scratch_database("modelgate_fuzz") as url:
        app = create_app(TestConfig(SQLALCHEMY_DATABASE_URI=url))
        account = make_account(app, EMAIL)
        token = account.mint("fuzz", scopes=["embed", "generate", "usage", "batch", "predict"])[
            "token"
        ]
        with app.app_context():
            db.session.get(User, account.user_id).role = "admin"
            db.session.commit()
            db.engine.dispose()
        yield url, token


@dataclass
class FuzzResult:
    credential: str
    returncode: int
    output: str


def run_schemathesis(base: str, credential: str, token: str, profile: str, seed: int) -> FuzzResult:
    settings = PROFILES[profile]
    env = {
        **os.environ,
        "MG_API_TOKEN": token,
        "MG_FUZZ_EMAIL": EMAIL,
        "MG_FUZZ_PASSWORD": PASSWORD,
        "SCHEMATHESIS_HOOKS": "tests.contract.hooks",
    }
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(HERE / f"schemathesis-{credential}.toml"),
        "run",
        f"{base}/v1/openapi.json",
        "--url",
        base,
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        str(settings["max_examples"]),
        "--seed",
        str(seed),
        "--workers",
        "2",
        "--no-color",
    ]
    if settings["max_time"] is not None:
        command += ["--max-time", str(settings["max_time"])]
    process = subprocess.run(command, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    return FuzzResult(credential, process.returncode, process.stdout + process.stderr)


def wait_for_model(base: str, token: str, model_id: str, seconds: float = 90.0) -> None:
    """Wait until the model's process is ready: the served document describes it only then."""
    give_up = time.monotonic() + seconds
    while time.monotonic() < give_up:
        answer = requests.get(
            f"{base}/v1/models/{model_id}", headers={"Authorization": f"Bearer {token}"}, timeout=5
        )
        if answer.status_code == 200:
            return
        time.sleep(0.3)
    raise AssertionError(f"{model_id} was not ready in {seconds} s")


def fuzz(profile: str, seed: int, credentials: tuple[str, ...] = ("token", "session")):
    """Run the profile with each credential kind; return the results."""
    results = []
    with fuzz_database() as (url, token), tempfile.TemporaryDirectory() as tmp:
        env = {**SERVER_ENV, "DATABASE_URL": url, "REDIS_URL": REDIS_URL}
        with gunicorn(env, Path(tmp), workers=2) as base:
            wait_for_model(base, token, HANDLER_MODEL)
            for credential in credentials:
                results.append(run_schemathesis(base, credential, token, profile, seed))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="long")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--credential", choices=["token", "session"], action="append")
    args = parser.parse_args()
    failed = 0
    for result in fuzz(args.profile, args.seed, tuple(args.credential or ("token", "session"))):
        print(f"===== schemathesis with the {result.credential} credential =====")
        print(result.output)
        failed |= result.returncode != 0
    return failed


if __name__ == "__main__":
    sys.exit(main())

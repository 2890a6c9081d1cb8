"""Processes that loaded torch end at once, with their logs written and the right status."""

from __future__ import annotations

import subprocess
import sys

import pytest

from api.process.ending import exit_code

SCRIPT = """
import logging, sys
import torch  # what makes the interpreter's teardown slow
logging.basicConfig(filename=sys.argv[1], level=logging.INFO)
logging.getLogger("t").info("written before the end")
from api.process.ending import exit_now
exit_now(int(sys.argv[2]))
"""


@pytest.mark.parametrize("code", [0, 3])
def test_exit_now_keeps_the_status_and_the_log(tmp_path, code):
    log = tmp_path / "out.log"
    ran = subprocess.run([sys.executable, "-c", SCRIPT, str(log), str(code)], timeout=60)
    assert ran.returncode == code
    assert "written before the end" in log.read_text()


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (None, 0),
        (SystemExit(0), 0),
        (SystemExit(None), 0),
        (SystemExit(3), 3),
        (SystemExit(-1), -1),
        (SystemExit("message"), 1),
        (ValueError(), 1),
    ],
)
def test_exit_code_is_the_one_the_exception_would_have_given(error, code):
    assert exit_code(error) == code

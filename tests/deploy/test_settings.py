"""Every setting the fabfile reads is in deploy.example.toml and in docs/deploy.md's table.

A key read but written down nowhere (`source` was) is a setting only its author can use.
"""

from __future__ import annotations

import re

from tests.services import ROOT

# A key read from a settings table: `x.get("key"` or `x["key"]`, not a run's own state.
READ = re.compile(r'(?<!state)(?<!_RUN)(?:\.get\(|(?<=[\w)\]])\[)"([a-z_]+)"')


def test_every_setting_the_fabfile_reads_is_written_down():
    code = "".join(path.read_text() for path in sorted((ROOT / "deploy").glob("*.py")))
    keys = set(READ.findall(code))
    assert {"source", "root", "known_hosts", "upstreams"} <= keys  # the pattern still finds them
    example = (ROOT / "deploy" / "deploy.example.toml").read_text()
    docs = (ROOT / "docs" / "deploy.md").read_text()
    in_example = {key for key in keys if re.search(rf"^(# )?({key} =|\[{key}[].])", example, re.M)}
    in_docs = {key for key in keys if re.search(rf"`\[?{key}[]`.]", docs)}
    assert keys - in_example == set(), "not in deploy/deploy.example.toml"
    assert keys - in_docs == set(), "not in docs/deploy.md"

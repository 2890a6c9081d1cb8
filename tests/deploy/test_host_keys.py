"""The deploy talks only to hosts whose SSH host key is the one `known_hosts` lists.

On each host the fabfile runs sudo and reads the secrets' file: a host that answers with
another key (a reinstalled server, or someone in the middle) must get nothing, not even
a login, and the operator must be told which key it offered.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.hosts import HOSTS, fab, fingerprint, known_hosts_line, new_key, write_settings
from tests.services import ROOT


@pytest.mark.parametrize("listed", ["another key", "nothing"])
def test_a_host_whose_key_is_not_the_known_one_is_refused_before_anything_runs(
    tmp_path, sshd, listed
):
    host, other_host = HOSTS
    other_key = new_key(tmp_path / "other_host_ed25519")
    known = [known_hosts_line(other_host, sshd["port"], sshd["host_key"])]
    if listed == "another key":  # the host was known with another key: it changed
        known.append(known_hosts_line(host, sshd["port"], other_key))
    Path(sshd["known_hosts"]).write_text("".join(known))
    root = tmp_path / "root"
    values = {"root": str(root), "bind": f"{host}:1", "env_file": str(tmp_path / "env")}
    settings = write_settings(tmp_path / "deploy.toml", sshd, ROOT, {host: values})

    result = fab(settings, "deploy", hosts=(host,))

    said = result.stdout + result.stderr
    assert not root.exists(), f"commands ran on a host with an unknown key:\n{said[-3000:]}"
    assert result.returncode != 0
    assert f"{host}: refusing to connect" in said, said[-3000:]
    assert fingerprint(sshd["host_key"]) in said  # what the operator checks on the host
    if listed == "another key":
        assert fingerprint(other_key) in said
    assert "Traceback" not in said

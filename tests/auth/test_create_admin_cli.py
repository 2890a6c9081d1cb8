"""`flask users create-admin`: promoting keeps the password; creating works without a terminal."""

from __future__ import annotations

import os
import subprocess
import sys

from sqlalchemy import select

from api.auth.models import User
from api.extensions import db
from tests.auth.conftest import PASSWORD, bearer, login, make_verified_user
from tests.services import ROOT


def _admin_page(app, address: str, password: str = PASSWORD) -> int:
    client = app.test_client()
    headers = bearer(login(client, address, password))
    return client.get("/v1/admin/users", headers=headers).status_code


def test_promoting_an_existing_account_keeps_its_password(app):
    make_verified_user(app, "member@example.org")
    runner = app.test_cli_runner()
    # Whatever arrives on stdin (here a stray line) is not taken as a new password.
    result = runner.invoke(
        args=["users", "create-admin", "Member@Example.org"], input="a different password\n"
    )
    assert result.exit_code == 0, result.output
    assert "member@example.org is an administrator" in result.output
    assert "password is unchanged" in result.output
    assert _admin_page(app, "member@example.org") == 200  # the old password still signs in
    wrong = app.test_client().post(
        "/v1/auth/login", json={"email": "member@example.org", "password": "a different password"}
    )
    assert wrong.status_code == 401


def test_promoting_needs_no_terminal_and_no_password(app):
    make_verified_user(app, "quiet@example.org")
    result = app.test_cli_runner().invoke(args=["users", "create-admin", "quiet@example.org"])
    assert result.exit_code == 0, result.output
    assert _admin_page(app, "quiet@example.org") == 200


def test_a_new_admin_is_created_with_password_stdin(app):
    result = app.test_cli_runner().invoke(
        args=["users", "create-admin", "--password-stdin", "new@example.org"],
        input=PASSWORD + "\n",
    )
    assert result.exit_code == 0, result.output
    assert "new@example.org is an administrator (id " in result.output
    assert "unchanged" not in result.output
    assert _admin_page(app, "new@example.org") == 200


def test_a_new_admin_without_a_password_is_refused_clearly(app):
    result = app.test_cli_runner().invoke(args=["users", "create-admin", "nobody@example.org"])
    assert result.exit_code != 0
    assert "No password on stdin" in result.output and "--password-stdin" in result.output
    with app.app_context():
        assert db.session.scalar(select(User).where(User.email == "nobody@example.org")) is None


def test_the_real_command_creates_then_promotes_without_a_terminal(
    make_app, database_url, tmp_path
):
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "MODELS": "",
        "FLASK_APP": "wsgi",
        "LOG_FILE": str(tmp_path / "cli.log"),
        "USAGE_SPOOL_DIR": str(tmp_path / "spool"),
    }
    command = [sys.executable, "-m", "flask", "users", "create-admin", "--password-stdin"]

    def run(address: str, stdin: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*command, address],
            input=stdin,
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    created = run("first@example.org", PASSWORD + "\n")
    assert created.returncode == 0, created.stderr
    again = run("first@example.org", "")  # no terminal, nothing on stdin: a promotion
    assert again.returncode == 0, again.stderr
    assert "password is unchanged" in again.stdout
    assert _admin_page(make_app(), "first@example.org") == 200

"""`flask` commands: `flask users create-admin EMAIL`, `flask write-openapi PATH`."""

from __future__ import annotations

import json
import sys

import click
from flask import Flask
from flask.cli import AppGroup

from api.edge.errors import ValidationFailed

users_cli = AppGroup("users", help="Manage user accounts.")


@users_cli.command("create-admin")
@click.argument("email")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read a new account's password from the first line of stdin (the default "
    "without a terminal).",
)
def create_admin_command(email: str, password_stdin: bool) -> None:
    """Make EMAIL an administrator, creating the account if there is none.

    An existing account keeps its password and is not asked for one; a new account's
    password is prompted for, or read from stdin: `echo "$PASSWORD" | flask users
    create-admin --password-stdin EMAIL`.
    """
    from api.admin.service import create_admin
    from api.auth.service import find_user_by_email

    existing = find_user_by_email(email) is not None
    password = None if existing else _read_new_password(password_stdin)
    try:
        user = create_admin(email, password)
    except ValidationFailed as error:
        raise click.ClickException(error.message) from None
    kept = " (its password is unchanged)" if existing else ""
    click.echo(f"{user.email} is an administrator (id {user.id}){kept}.")


def _read_new_password(from_stdin: bool) -> str:
    if sys.stdin.isatty() and not from_stdin:
        return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise click.ClickException(
            "No password on stdin: a new account needs one. Type it in a terminal, or "
            'pipe it in: echo "$PASSWORD" | flask users create-admin --password-stdin EMAIL'
        )
    return password


@click.command("write-openapi")
@click.argument("path", type=click.Path(dir_okay=False, writable=True))
def write_openapi_command(path: str) -> None:
    """Write the OpenAPI document to PATH (the web app's client is generated from it)."""
    from api.edge.openapi import openapi

    with open(path, "w", encoding="utf-8") as file:
        json.dump(openapi.spec.to_dict(), file, indent=2, sort_keys=True, ensure_ascii=False)
        file.write("\n")


def register_commands(app: Flask) -> None:
    app.cli.add_command(users_cli)
    app.cli.add_command(write_openapi_command)

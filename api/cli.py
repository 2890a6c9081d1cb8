"""`flask` commands: `flask users create-admin EMAIL`, `flask write-openapi PATH`."""

from __future__ import annotations

import json
import sys

import click
from flask import Flask
from flask.cli import AppGroup

from api.errors import ValidationFailed

users_cli = AppGroup("users", help="Manage user accounts.")


@users_cli.command("create-admin")
@click.argument("email")
def create_admin_command(email: str) -> None:
    """Make EMAIL an administrator; the password is prompted for, or read from stdin."""
    from api.admin.service import create_admin

    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\n")
    try:
        user = create_admin(email, password)
    except ValidationFailed as error:
        raise click.ClickException(error.message) from None
    click.echo(f"{user.email} is an administrator (id {user.id}).")


@click.command("write-openapi")
@click.argument("path", type=click.Path(dir_okay=False, writable=True))
def write_openapi_command(path: str) -> None:
    """Write the OpenAPI document to PATH (the web app's client is generated from it)."""
    from api.extensions import openapi

    with open(path, "w", encoding="utf-8") as file:
        json.dump(openapi.spec.to_dict(), file, indent=2, sort_keys=True, ensure_ascii=False)
        file.write("\n")


def register_commands(app: Flask) -> None:
    app.cli.add_command(users_cli)
    app.cli.add_command(write_openapi_command)

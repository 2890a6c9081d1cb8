"""`flask` commands: `flask users create-admin EMAIL`."""

from __future__ import annotations

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


def register_commands(app: Flask) -> None:
    app.cli.add_command(users_cli)

"""`flask` commands: `flask users create-admin EMAIL`."""

from __future__ import annotations

from flask import Flask
from flask.cli import AppGroup

users_cli = AppGroup("users", help="Manage user accounts.")


def register_commands(app: Flask) -> None:
    app.cli.add_command(users_cli)

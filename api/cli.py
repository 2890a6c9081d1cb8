"""`flask` commands: `flask users create-admin EMAIL`, `flask users create-service NAME`,
`flask write-openapi PATH`."""

from __future__ import annotations

import json
import re
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


SERVICE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")


@users_cli.command("create-service")
@click.argument("name")
@click.option(
    "--scopes",
    default="predict",
    show_default=True,
    help="Comma-separated scopes of the new token (predict, embed, generate, usage, batch).",
)
@click.option(
    "--rate-limit",
    default="100000/minute",
    show_default=True,
    help="The account's rate limit: it carries every user of the hosts that call this one.",
)
def create_service_command(name: str, scopes: str, rate_limit: str) -> None:
    """Mint an API token for the service account NAME, creating the account if there is none.

    For another modelgate that calls this one (an API host calling a model host,
    docs/deploy.md "Several machines"). The account cannot log in. The token goes to
    stdout, alone on its line and once: it is stored only as a hash and never logged.
    """
    from limits import parse_many

    from api.access.security import ALL_SCOPES
    from api.admin.service import create_service_token

    if not SERVICE_NAME.fullmatch(name):
        raise click.ClickException(
            "NAME is 1-40 of a-z, 0-9 and '-', starting with a letter or digit."
        )
    wanted = sorted({scope.strip() for scope in scopes.split(",") if scope.strip()})
    unknown = set(wanted) - ALL_SCOPES
    if not wanted or unknown:
        raise click.ClickException(
            f"Unknown or no scopes {sorted(unknown)}; choose from {', '.join(sorted(ALL_SCOPES))}."
        )
    try:
        parse_many(rate_limit)
    except ValueError:
        raise click.ClickException(
            f"Not a rate limit: {rate_limit!r} (e.g. 100000/minute)."
        ) from None
    user, token, secret = create_service_token(name, wanted, rate_limit)
    click.echo(
        f"Service account {user.email} (id {user.id}), token {token.id} {token.prefix}… "
        f"with scopes {','.join(token.scopes)}; it is shown once, below.",
        err=True,
    )
    click.echo(secret)


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

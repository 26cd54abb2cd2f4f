"""The standalone server's own command: ``flask --app wsgi users ...`` (its Redis directory)."""

from __future__ import annotations

import json
import secrets

import click
from flask import Flask
from flask.cli import AppGroup

from webservice.api.gateway import current_gateway
from webservice.cli.gateway import fail_on_errors, operator_event
from webservice.store.users import User

users_cli = AppGroup("users", help="Manage the users who may log in.")


def register(app: Flask) -> None:
    app.cli.add_command(users_cli)


def _user_json(user: User) -> str:
    return json.dumps(
        {"username": user.username, "userId": user.webservice_id, "accessKey": user.access_key}
    )


@users_cli.command("add")
@click.argument("username")
@click.option("--password", help="Password for the web UI (none: API access only).")
@click.option(
    "--generate-password", is_flag=True, help="Make up a password and print it."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@fail_on_errors
def add_user(username: str, password: str | None, generate_password: bool, as_json: bool) -> None:
    """Add a user and print its access key."""
    if generate_password and password is None:
        password = secrets.token_urlsafe(12)
    elif generate_password:
        raise click.UsageError("give --password or --generate-password, not both")
    user = current_gateway().users.add(username, password)
    if as_json:
        record = json.loads(_user_json(user))
        if generate_password:
            record["password"] = password
        click.echo(json.dumps(record))
        return
    click.echo(f"user {user.username} ({user.webservice_id}) added")
    click.echo(f"access key: {user.access_key}")
    if generate_password:
        click.echo(f"password:   {password}")


@users_cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per line.")
@fail_on_errors
def list_users(as_json: bool) -> None:
    """List every user (access keys are not shown)."""
    for user in current_gateway().users.all():
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "username": user.username,
                        "userId": user.webservice_id,
                        "active": user.active,
                        "hasPassword": user.password_hash is not None,
                    }
                )
            )
        else:
            state = "active" if user.active else "inactive"
            click.echo(f"{user.webservice_id:<10} {user.username:<32} {state}")


@users_cli.command("disable")
@click.argument("username")
@fail_on_errors
def disable_user(username: str) -> None:
    """Stop a user from logging in and end all of its sessions."""
    gateway = current_gateway()
    user = gateway.users.set_active(username, False)
    ended = gateway.endings.all_of_user(
        user.id, operator_event(user=user.username, reason="user_disabled")
    )
    click.echo(f"user {username} disabled, {ended} session(s) ended")


@users_cli.command("enable")
@click.argument("username")
@fail_on_errors
def enable_user(username: str) -> None:
    """Let a disabled user log in again."""
    current_gateway().users.set_active(username, True)
    click.echo(f"user {username} enabled")


@users_cli.command("reset-key")
@click.argument("username")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@fail_on_errors
def reset_key(username: str, as_json: bool) -> None:
    """Give a user a new access key and print it (the old one stops working)."""
    user = current_gateway().users.reset_access_key(username)
    click.echo(_user_json(user) if as_json else f"access key: {user.access_key}")

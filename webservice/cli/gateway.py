"""``flask operations|sessions|audit``: the operations of webservice.php, the sessions, the audit
trail."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import click
from flask import Flask
from flask.cli import AppGroup
from redis.exceptions import RedisError

from webservice.api.gateway import current_gateway
from webservice.events import SessionEvent
from webservice.store.audit import AuditEntry, AuditEvent
from webservice.store.confirmation import NotConfirmed
from webservice.store.users import User, UserError

operations_cli = AppGroup("operations", help="Inspect the operations of webservice.php.")
sessions_cli = AppGroup("sessions", help="See and end sessions (web and API).")
audit_cli = AppGroup("audit", help="Read the audit trail of logins, extensions and logouts.")


def register(app: Flask) -> None:
    app.cli.add_command(operations_cli)
    app.cli.add_command(sessions_cli)
    app.cli.add_command(audit_cli)


def fail_on_errors(action):  # type: ignore[no-untyped-def]
    """Turns directory and Redis errors into a one-line message and exit status 1."""

    def run(*args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            return action(*args, **kwargs)
        except UserError as error:
            raise click.ClickException(str(error)) from None
        except NotConfirmed as error:
            raise click.ClickException(
                f"{error}: the change is made on the Redis master, but a failover could still "
                "undo it; run the command again to confirm it"
            ) from None
        except RedisError as error:
            raise click.ClickException(f"Redis is unreachable: {error}") from None

    run.__name__ = action.__name__
    run.__doc__ = action.__doc__
    return run


@operations_cli.command("list")
def list_operations() -> None:
    """Print every operation with its parameters and whether it needs a session."""
    registry = current_gateway().operations
    for op in registry:
        session = "session" if op.needs_session else "no session"
        params = ", ".join(
            f"{name}:{kind}{'' if required else '?'}" for name, kind, required in op.describe_params()
        )
        click.echo(f"{op.name:<16} {op.method:<5} {session:<11} ({params or 'no parameters'})")
        click.echo(f"{'':<16} {op.description}  [{registry.source(op.name)}]")


def existing_user(username: str) -> User:
    user = current_gateway().users.get(username)
    if user is None:
        raise UserError(f"no such user {username!r}")
    return user


def _when(milliseconds: int) -> str:
    return datetime.fromtimestamp(milliseconds / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


@sessions_cli.command("list")
@click.argument("username", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per line.")
@fail_on_errors
def list_sessions(username: str | None, as_json: bool) -> None:
    """List the live sessions of USERNAME, or of every user."""
    gateway = current_gateway()
    users = [existing_user(username)] if username else gateway.users.all()
    for user in users:
        for view in gateway.sessions.list_for_user(user.id):
            if as_json:
                click.echo(json.dumps({"username": user.username, **view.as_dict()}))
                continue
            click.echo(
                f"{view.handle}  {user.username:<16} {view.kind:<3} "
                f"{'linked' if view.linked else 'alone ':<6} created {_when(view.created)}  "
                f"last used {_when(view.last_used)}  {view.address}  {view.user_agent}"
            )


@sessions_cli.command("revoke")
@click.argument("handle")
@fail_on_errors
def revoke_session(handle: str) -> None:
    """End the session HANDLE and every session linked to it."""
    gateway = current_gateway()
    owner = gateway.sessions.owner_of(handle)
    owner_user = gateway.users.get_by_id(owner) if owner is not None else None
    event = operator_event(user=owner_user.username if owner_user else "", reason="revoke")
    if owner is None or not gateway.endings.by_handle(owner, handle, event):
        # A retry of a revocation whose confirmation came too late is told it succeeded.
        ended_owner = gateway.sessions.owner_of(handle, ended=True)
        if ended_owner is None or not gateway.sessions.ended_by_handle(ended_owner, handle):
            raise click.ClickException(f"no live session has handle {handle!r}")
    click.echo(f"session {handle} ended, with every session linked to it")


@sessions_cli.command("revoke-user")
@click.argument("username")
@fail_on_errors
def revoke_user_sessions(username: str) -> None:
    """End every session of USERNAME."""
    gateway = current_gateway()
    user = existing_user(username)
    event = operator_event(user=user.username, reason="revoke_user")
    ended = gateway.endings.all_of_user(user.id, event)
    click.echo(f"{ended} login(s) of {username} ended, with every session linked to them")


def operator_event(**values: str) -> SessionEvent:
    """An event caused by a ``flask`` command, naming the operating-system user."""
    return SessionEvent("cli", agent=AuditEvent.of_operator("end").agent, **values)


def _audit_line(entry: AuditEntry) -> str:
    event = entry.event
    why = " ".join(part for part in (event.reason, f"({event.detail})" if event.detail else "") if part)
    return (
        f"{entry.when}  {event.event:<12} {event.via:<3}  {event.user or '-':<16} "
        f"{event.handle or '-':<31}  {event.address or '-':<15}  {why or '-'}  {event.agent}"
    )


@audit_cli.command("tail")
@click.option("-n", "count", default=20, show_default=True, type=click.IntRange(min=0),
              help="How many of the last entries to print.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new entries as they come (Ctrl-C ends).")
@click.option("--user", help="Only the entries of this username.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per line.")
@fail_on_errors
def audit_tail(count: int, follow: bool, user: str | None, as_json: bool) -> None:
    """Print the last entries of the audit trail, oldest first (times in UTC)."""
    gateway = current_gateway()
    trail = gateway.audit

    def show(entry: AuditEntry) -> None:
        click.echo(json.dumps(entry.as_dict()) if as_json else _audit_line(entry))

    entries, newest = trail.tail(count, user) if count else ([], trail.tail(1)[1])
    for entry in entries:
        show(entry)
    if not follow:
        return
    # Each wait stays well inside the socket timeout, so a quiet trail is no error.
    block_ms = max(100, int(float(gateway.settings["REDIS_SOCKET_TIMEOUT"]) * 500))
    try:
        for entry in trail.follow(newest, user, block_ms=block_ms):
            show(entry)
    except KeyboardInterrupt:
        pass

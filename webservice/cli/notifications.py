"""``flask notifications ...``: run a delivery process, see and retry notifications, rotate the
signing key."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
from datetime import datetime, timezone

import click
from flask import Flask
from flask.cli import AppGroup

from webservice.api.gateway import current_gateway
from webservice.cli.gateway import fail_on_errors
from webservice.notifications.delivery import Delivery
from webservice.notifications.key_files import write_new_key_file
from webservice.notifications.tokens import LogoutTokens
from webservice.store.outbox import OutboxEntry
from webservice.store.signing_keys import SigningKeys

notifications_cli = AppGroup(
    "notifications", help="Logout notifications: deliver them, see them, retry failed ones."
)


def register(app: Flask) -> None:
    app.cli.add_command(notifications_cli)


@notifications_cli.command("deliver")
@click.option("--consumer", help="This process's name in the consumer group (default host:pid).")
@fail_on_errors
def deliver(consumer: str | None) -> None:
    """Deliver logout notifications until stopped (SIGTERM or Ctrl-C); run one or more per
    deployment, on any hosts."""
    gateway = current_gateway()
    settings = gateway.notifications
    if not settings.enabled:
        raise click.ClickException("WSGATE_LOGOUT_RECEIVERS is empty: nothing to deliver")
    if not settings.issuer:
        raise click.ClickException(
            "set WSGATE_LOGOUT_ISSUER (or WSGATE_PUBLIC_ORIGINS): the logout tokens' iss"
        )
    name = consumer or f"{socket.gethostname()}:{os.getpid()}"
    tokens = LogoutTokens(gateway.signing_keys, settings.issuer, settings.token_ttl)
    delivery = Delivery(gateway.outbox, tokens, settings, name)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    logging.getLogger("webservice").setLevel(logging.INFO)
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    count = len(settings.receivers)
    click.echo(f"delivering logout notifications as {name} to {count} receiver(s)")
    delivery.run(stop)
    click.echo("stopped")


def _when(entry_id: str) -> str:
    milliseconds = int(entry_id.partition("-")[0])
    moment = datetime.fromtimestamp(milliseconds / 1000, tz=timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _line(entry: OutboxEntry) -> str:
    notice = entry.notice
    line = (
        f"{entry.id}  {_when(entry.original_id or entry.id)}  {notice.reason:<16} "
        f"{notice.user or '-':<16} sid={notice.sid} sub={notice.sub}  {notice.url}"
    )
    return f"{line}  [{entry.why}]" if entry.why else line


@notifications_cli.command("list")
@click.option("--failed", is_flag=True, help="Those given up on (newest last), with why.")
@click.option("-n", "count", default=100, show_default=True, type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per line.")
@fail_on_errors
def list_notifications(failed: bool, count: int, as_json: bool) -> None:
    """List the notifications not yet delivered (oldest first), or those given up on."""
    outbox = current_gateway().outbox
    entries = outbox.failed(count) if failed else outbox.undelivered(count)
    for entry in entries:
        click.echo(json.dumps(entry.as_dict()) if as_json else _line(entry))


@notifications_cli.command("retry")
@click.argument("entry_id", metavar="ID")
@fail_on_errors
def retry(entry_id: str) -> None:
    """Put the failed notification ID (from `list --failed`) back in the outbox."""
    new_id = current_gateway().outbox.retry(entry_id)
    if new_id is None:
        raise click.ClickException(f"no failed notification has id {entry_id!r}")
    click.echo(f"notification {entry_id} queued again as {new_id}")


@notifications_cli.command("rotate-key")
@fail_on_errors
def rotate_key() -> None:
    """Sign logout tokens with a new key from now on; the old one stays published at
    /.well-known/jwks.json until the tokens it signed have expired."""
    keys = current_gateway().signing_keys
    if not isinstance(keys, SigningKeys):
        raise click.ClickException(
            "the signing keys are files (WSGATE_LOGOUT_SIGNING_KEY_FILES): make one with"
            " `notifications new-key PATH`, list it first, and restart"
        )
    new, old = keys.rotate()
    click.echo(f"signing key {new} is current" + (f" (replaces {old})" if old else ""))


@notifications_cli.command("new-key")
@click.argument("path", type=click.Path(dir_okay=False, writable=True))
def new_key(path: str) -> None:
    """Write a new signing key to PATH (a PEM file readable by its owner only), for
    WSGATE_LOGOUT_SIGNING_KEY_FILES."""
    try:
        kid = write_new_key_file(path)
    except OSError as error:
        raise click.ClickException(f"cannot write {path}: {error.strerror}") from None
    click.echo(f"wrote signing key {kid} to {path}")

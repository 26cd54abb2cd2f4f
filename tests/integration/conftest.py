"""Integration helpers: apps and clients over the real redis-server of ``redis_server``.

``real_redis`` (tests/conftest.py) empties the server before each test; every fixture here depends
on it, so each test starts from an empty store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from flask import Flask

from tests.conftest import TEST_SETTINGS
from tests.wsclient import WebServiceClient, flask_transport
from webservice import events
from webservice.api.gateway import Gateway
from webservice.standalone import create_app
from webservice.standalone.redis_server import RedisServer

USERNAME = "alice"


def gateway_of(app: Flask) -> Gateway:
    """The gateway services of ``app``, without needing its app context."""
    return app.extensions["wsgate"]


def client_of(app: Flask) -> WebServiceClient:
    """A new wire client of ``app`` (one per thread: Flask test clients are not shared)."""
    return WebServiceClient(flask_transport(app.test_client()))


def run_threads(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Runs ``work(i)`` for each i < count, all on their own thread at once; answers in order."""
    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(work, range(count)))


def hear_endings(app: Flask, record: Callable[[Any, Any], None], *, after_the_fact: bool) -> None:
    """Connects to ``app`` a receiver of ``family_ended`` that calls ``record(event, round_trip)``
    once the ending is made: one that may hear afterwards (``after_the_fact``, as the gateway's
    own receivers), or one that must hear first (as a host's may)."""

    def note(sender, event, round_trip, **extra):  # type: ignore[no-untyped-def]
        round_trip.on_done(lambda: record(event, round_trip))

    events.connect(app, {events.family_ended: note}, after_the_fact=after_the_fact)


@dataclass
class Tally:
    """What a :func:`counting_client` sent: writes to Redis (a single command, or a whole
    pipeline: one round trip each) and the commands in them."""

    round_trips: int = 0
    commands: int = 0


def counting_client(
    server: RedisServer, tally: Tally, *, decode_responses: bool = True
) -> redis.Redis:
    """A client of ``server`` whose every write adds to ``tally``."""

    class CountingConnection(redis.Connection):
        def send_packed_command(self, command, check_health=True):  # type: ignore[no-untyped-def]
            tally.round_trips += 1
            tally.commands += len(command_names(command))
            return super().send_packed_command(command, check_health)

    pool = redis.ConnectionPool(
        connection_class=CountingConnection,
        host="127.0.0.1",
        port=server.port,
        decode_responses=decode_responses,
    )
    return redis.Redis(connection_pool=pool)


def command_names(packed: bytes | str | list[bytes]) -> list[str]:
    """The names of the commands in one write to Redis (RESP arrays of bulk strings), however
    it was packed: by redis-py or by the gateway's own wire.py."""
    if isinstance(packed, list):
        packed = b"".join(packed)
    data = packed.encode() if isinstance(packed, str) else packed
    names, at = [], 0
    while at < len(data):
        end = data.index(b"\r\n", at)
        count, at = int(data[at + 1 : end]), end + 2
        for index in range(count):
            end = data.index(b"\r\n", at)
            length, at = int(data[at + 1 : end]), end + 2
            if index == 0:
                names.append(data[at : at + length].decode().upper())
            at += length + 2
    return names


def error_code(answer: dict) -> str | None:
    return None if answer["success"] else answer["error"]["code"]


@pytest.fixture
def make_app(real_redis, redis_server: RedisServer) -> Callable[..., Flask]:
    """Builds further app instances over the same real Redis, with extra settings.

    Each call is a separate ``create_app``: its own gateway and its own Redis connection pool,
    as a second worker process would have.
    """

    def build(**settings: Any) -> Flask:
        return create_app({**TEST_SETTINGS, "REDIS_URL": redis_server.url, **settings})

    return build


@pytest.fixture
def alice(real_app):
    """The user ``alice`` (with her access key), added through the app's own directory."""
    return gateway_of(real_app).users.add(USERNAME)


@pytest.fixture
def logged_in(real_ws: WebServiceClient, alice) -> Iterator[WebServiceClient]:
    """``real_ws`` holding a live session of ``alice``."""
    answer = real_ws.login(USERNAME, alice.access_key)
    assert answer["success"], answer
    yield real_ws

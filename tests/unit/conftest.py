"""Fixtures of the unit tier: apps over fakeredis (with Lua), built with any settings."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import fakeredis
import pytest
from flask import Flask

from tests.conftest import TEST_SETTINGS
from tests.unit.support import TEST_OPERATIONS
from webservice.api.gateway import EXTENSION_KEY, Gateway
from webservice.api.registry import installed_operations
from webservice.standalone import create_app

AppFactory = Callable[..., Flask]


def gateway_of(app: Flask) -> Gateway:
    return app.extensions[EXTENSION_KEY]


@pytest.fixture
def make_app() -> Iterator[AppFactory]:
    """Builds apps over a fresh fakeredis: ``make_app(settings, redis=..., extra_operations=...)``."""

    def build(
        settings: dict[str, Any] | None = None,
        *,
        redis: Any = None,
        extra_operations: tuple = (),
        use_fake_redis: bool = True,
    ) -> Flask:
        clients: dict[str, Any] = {}
        if redis is None and use_fake_redis:
            server = fakeredis.FakeServer()
            redis = fakeredis.FakeRedis(server=server, decode_responses=True)
            clients["web_session_client"] = fakeredis.FakeRedis(server=server)
        return create_app(
            {**TEST_SETTINGS, **(settings or {})},
            redis_client=redis,
            operations=[*installed_operations(), *extra_operations] if extra_operations else None,
            **clients,
        )

    yield build


@pytest.fixture
def probe_app(make_app: AppFactory) -> Flask:
    """An app with the built-in operations plus the tests' probe, typed and boom operations."""
    return make_app(extra_operations=TEST_OPERATIONS)


@pytest.fixture
def probe_client(probe_app: Flask):
    return probe_app.test_client()


@pytest.fixture
def client(app: Flask):
    return app.test_client()


@pytest.fixture
def redis(gateway: Gateway):
    return gateway.redis


@pytest.fixture
def alice(gateway: Gateway):
    """User ``alice`` (API only: no password, so no slow Argon2 hashing)."""
    return gateway.users.add("alice")


@pytest.fixture
def bob(gateway: Gateway):
    return gateway.users.add("bob")

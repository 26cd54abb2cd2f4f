"""Fixtures of the web-UI unit tests: an app over fakeredis with users who have passwords."""

from __future__ import annotations

import pytest

from tests.unit.web.support import Env, make_env


@pytest.fixture
def env() -> Env:
    return make_env()


@pytest.fixture
def alice(env: Env):
    return env.add_user("alice")


@pytest.fixture
def bob(env: Env):
    return env.add_user("bob")

"""scripts/bench's in-process loop (``--profile`` samples it): it calls the gateway's WSGI app with
``listtypes`` on a live session, over the real redis-server, and counts the calls answered."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.conftest import TEST_SETTINGS

pytestmark = pytest.mark.integration

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def bench_data():
    spec = importlib.util.spec_from_file_location("bench_data", SCRIPTS / "bench_data.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_in_process_loop_answers_listtypes(logged_in, redis_server):
    """The lean path answers a plain list, which has no ``close`` (the loop called it anyway:
    ``--profile``'s in-process part failed with AttributeError)."""
    calls = bench_data().wsgi_loop(
        redis_server.url, TEST_SETTINGS["SECRET_KEY"], logged_in.session_name, 0.2
    )
    assert calls > 0

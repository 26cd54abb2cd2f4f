"""The attack tier: attacks on the running gateway (real gunicorn over a real redis-server), each
asserting the outcome the gateway promises. Bounded in time; run by scripts/test."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.e2e.conftest import Gateway, live_gateway
from tests.gunicorn_process import start_gunicorn, stop_gunicorn
from webservice.standalone.redis_server import RedisServer

__all__ = ["Gateway", "live_gateway", "serve_gateway"]


@contextmanager
def serve_gateway(
    workdir: Path, extra_env: dict[str, str], port: int | None = None
) -> Iterator[Gateway]:
    """gunicorn (config/gunicorn.conf.py, 2 workers) with ``extra_env`` over its own
    redis-server, for a module's fixture."""
    with RedisServer(workdir / "redis") as redis_server:
        log_path = workdir / "gunicorn.log"
        process, base_url, env = start_gunicorn(
            redis_server.url, log_path, extra_env=extra_env, port=port
        )
        try:
            yield Gateway(base_url, redis_server.url, env, log_path)
        finally:
            stop_gunicorn(process)

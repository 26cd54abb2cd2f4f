"""Real gunicorn over HTTP, with the project's own config/gunicorn.conf.py, on a real redis-server."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.gunicorn_process import ROOT, start_gunicorn, stop_gunicorn
from webservice.standalone.redis_server import RedisServer

ACCESS_LINE = re.compile(r'^<(\d+)> "([^"]*)" \d+')


@dataclass
class Gateway:
    base_url: str
    redis_url: str
    env: dict[str, str]
    #: gunicorn's output, access log included: ``<pid> "METHOD PATH HTTP/1.1" status`` per line.
    log_path: Path | None = None

    def worker_pids(self, marker: str) -> set[int]:
        """The pids of the workers that answered requests whose request line contains ``marker``."""
        assert self.log_path is not None
        pids = set()
        for line in self.log_path.read_text().splitlines():
            match = ACCESS_LINE.match(line)
            if match and marker in match.group(2):
                pids.add(int(match.group(1)))
        return pids

    def flask(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Runs ``flask --app wsgi ARGS`` against this gateway's Redis."""
        return subprocess.run(
            [sys.executable, "-m", "flask", "--app", "wsgi", *args],
            cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip


@pytest.fixture(scope="module")
def live_gateway(tmp_path_factory) -> Gateway:
    """gunicorn with 2 workers over its own redis-server, for one test module."""
    workdir = tmp_path_factory.mktemp("e2e")
    with RedisServer(workdir / "redis") as redis_server:
        log_path = workdir / "gunicorn.log"
        process, base_url, env = start_gunicorn(redis_server.url, log_path)
        try:
            yield Gateway(base_url, redis_server.url, env, log_path)
        finally:
            stop_gunicorn(process)

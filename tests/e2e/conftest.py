"""Real gunicorn over HTTP, with the project's own config/gunicorn.conf.py, on a real redis-server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from webservice.redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parents[2]
ACCESS_LINE = re.compile(r'^<(\d+)> "([^"]*)" \d+')


#: Test-only gunicorn options: the access log names the worker's pid (``%(p)s`` is ``<pid>``), so
#: a test can tell which worker answered; no control socket in the home directory, which two
#: gunicorns running at once would share.
TEST_GUNICORN_ARGS = """--access-logformat '%(p)s "%(r)s" %(s)s' --no-control-socket"""


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


def start_gunicorn(redis_url: str, log_path: Path, workers: int = 2, extra_env: dict | None = None):
    port = free_port()
    env = {
        **os.environ,
        "WSGATE_REDIS_URL": redis_url,
        "WSGATE_BIND": f"127.0.0.1:{port}",
        "WSGATE_WORKERS": str(workers),
        "WSGATE_SECRET_KEY": "e2e-secret-key",
        "WSGATE_SESSION_COOKIE_SECURE": "false",
        "GUNICORN_CMD_ARGS": TEST_GUNICORN_ARGS,
        **(extra_env or {}),
    }
    log = open(log_path, "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(f"{base_url}/webservice.php", timeout=1)
            break
        except requests.RequestException:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"gunicorn did not start; see {log_path}")
            time.sleep(0.1)
    return process, base_url, env


def stop_gunicorn(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


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

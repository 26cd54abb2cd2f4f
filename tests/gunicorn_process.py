"""Real gunicorn for the HTTP tiers: the project's own config/gunicorn.conf.py on a free loopback
port, over a given Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import requests

from webservice.standalone.redis_server import free_port

ROOT = Path(__file__).resolve().parents[1]
#: The access log names the worker's pid (tests prove every worker answered); no control socket.
TEST_GUNICORN_ARGS = """--access-logformat '%(p)s "%(r)s" %(s)s' --no-control-socket"""


def start_gunicorn(
    redis_url: str,
    log_path: Path,
    workers: int = 2,
    extra_env: dict[str, str] | None = None,
    port: int | None = None,
) -> tuple[subprocess.Popen, str, dict[str, str]]:
    """Starts gunicorn (on ``port``, else a free one) and waits until a worker answers:
    (process, base URL, environment)."""
    port = port or free_port()
    env = {
        **os.environ,
        "WSGATE_REDIS_URL": redis_url,
        "WSGATE_BIND": f"127.0.0.1:{port}",
        "WSGATE_WORKERS": str(workers),
        "WSGATE_SECRET_KEY": "http-tests-secret-key",
        "WSGATE_SESSION_COOKIE_SECURE": "false",
        "WSGATE_HIDE_UNKNOWN_USERS": "false",
        # gunicorn's own access log (off by default: the gateway logs each request itself), for
        # the tests that read which worker answered.
        "WSGATE_ACCESS_LOG": "-",
        "GUNICORN_CMD_ARGS": TEST_GUNICORN_ARGS,
        **(extra_env or {}),
    }
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py", "wsgi:app"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base_url = f"http://127.0.0.1:{port}"
    _wait_until_serving(base_url, process, log_path)
    return process, base_url, env


def _wait_until_serving(base_url: str, process: subprocess.Popen, log_path: Path) -> None:
    """Workers import the app after the master listens, so early requests may be accepted and
    then wait: any failure short of gunicorn exiting means "not yet"."""
    deadline = time.monotonic() + 60
    while True:
        try:
            requests.get(f"{base_url}/webservice.php", timeout=5)
            return
        except requests.RequestException:
            if process.poll() is not None or time.monotonic() > deadline:
                stop_gunicorn(process)
                raise RuntimeError(f"gunicorn did not start serving; see {log_path}") from None
            time.sleep(0.1)


def stop_gunicorn(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()

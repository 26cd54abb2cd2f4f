"""``scripts/serve`` keeps its Redis alive: when the redis-server it started dies, it starts it
again on its append-only file, gunicorn keeps running, and the gateway serves again by itself
with every session it had."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis
import requests

from tests.gunicorn_process import ROOT
from webservice.standalone.redis_server import free_port

pytestmark = pytest.mark.e2e
ENDPOINT = "/webservice.php"
#: How long the gateway may stay unavailable after redis-server is killed.
RECOVERY_SECONDS = 15.0


def wait_until(condition, seconds: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {seconds} s"
        time.sleep(0.1)


def call(base_url: str, **params: str) -> dict:
    return requests.post(base_url + ENDPOINT, data=params, timeout=10).json()


def test_serve_restarts_its_redis_and_keeps_serving(tmp_path: Path) -> None:
    http_port, redis_port = free_port(), free_port()
    base_url = f"http://127.0.0.1:{http_port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("WSGATE_")},
        "WSGATE_BIND": f"127.0.0.1:{http_port}",
        "WSGATE_REDIS_PORT": str(redis_port),
        "WSGATE_DATA_DIR": str(tmp_path / "data"),
        "WSGATE_WORKERS": "2",
        "WSGATE_HIDE_UNKNOWN_USERS": "false",
    }
    log = open(tmp_path / "serve.log", "w")
    serve = subprocess.Popen(
        ["bash", "scripts/serve"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_until(lambda: "ready:" in (tmp_path / "serve.log").read_text(), 90, "serve is ready")
        text = (tmp_path / "serve.log").read_text()
        access_key = text.split("access key (API):", 1)[1].split()[0]
        token = call(base_url, operation="getchallenge", username="admin")["result"]["token"]
        proof = hashlib.md5((token + access_key).encode()).hexdigest()
        session_name = call(base_url, operation="login", username="admin", accessKey=proof)[
            "result"
        ]["sessionName"]
        assert call(base_url, operation="listtypes", sessionName=session_name)["success"]
        time.sleep(1.5)  # the append-only file is synced every second

        store = redis.Redis(port=redis_port)
        old_pid = store.info("server")["process_id"]
        os.kill(old_pid, signal.SIGKILL)
        answer = call(base_url, operation="listtypes", sessionName=session_name)
        assert answer["success"] or answer["error"]["code"] == "SERVICE_UNAVAILABLE", answer

        wait_until(
            lambda: call(base_url, operation="listtypes", sessionName=session_name)["success"],
            RECOVERY_SECONDS,
            "the session works again",
        )
        assert store.info("server")["process_id"] != old_pid
        assert serve.poll() is None, "scripts/serve stopped"
        assert "starting it again" in (tmp_path / "serve.log").read_text()
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        try:
            serve.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(serve.pid, signal.SIGKILL)
        log.close()

"""Redis down or hung is answered cleanly everywhere, over real gunicorn: web pages the 503
page (with a session cookie too), webservice.php its SERVICE_UNAVAILABLE envelope, /readyz 503
within its own timeout; one log line per request, no traceback; and all of it recovers."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.attack.test_web_login_secret import web_login
from tests.e2e.conftest import Gateway
from tests.gunicorn_process import start_gunicorn, stop_gunicorn
from webservice.standalone.redis_server import RedisServer

pytestmark = pytest.mark.e2e
ENDPOINT = "/webservice.php"
#: The defaults: a request waits at most the socket timeout (2 s: a timeout is not retried),
#: /readyz its own (0.5 s); plus slack for a loaded machine.
REQUEST_BOUND = 2.0 + 1.5
READY_BOUND = 0.5 + 1.0


@pytest.fixture
def troubled(tmp_path: Path) -> Iterator[tuple[Gateway, RedisServer]]:
    redis_server = RedisServer(tmp_path / "redis", persistent=True).start()
    log_path = tmp_path / "gunicorn.log"
    process, base_url, env = start_gunicorn(redis_server.url, log_path)
    try:
        yield Gateway(base_url, redis_server.url, env, log_path), redis_server
    finally:
        stop_gunicorn(process)
        if redis_server.process is not None and redis_server.process.poll() is None:
            os.kill(redis_server.process.pid, signal.SIGCONT)
        redis_server.stop()


def timed(call) -> tuple[requests.Response, float]:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    answer = call()
    return answer, time.monotonic() - started


def check_everything_answers(gateway: Gateway, browser: requests.Session, session_name: str) -> None:
    base = gateway.base_url
    cookie = "; ".join(f"{name}={value}" for name, value in browser.cookies.items())
    for path in ("/", "/sessions", "/login"):
        answer, seconds = timed(lambda: requests.get(base + path, headers={"Cookie": cookie}, timeout=30))
        assert answer.status_code == 503, (path, answer.status_code, answer.text[:200])
        assert "Temporarily unavailable" in answer.text, path
        assert seconds < REQUEST_BOUND, (path, seconds)
    for params, headers in (
        ({"operation": "listtypes", "sessionName": session_name}, {}),
        ({"operation": "extendsession"}, {"Cookie": cookie, "Origin": base}),
        ({"operation": "getchallenge", "username": "trouble"}, {}),
    ):
        answer, seconds = timed(
            lambda: requests.post(base + ENDPOINT, data=params, headers=headers, timeout=30)
        )
        assert answer.status_code == 200, (params, answer.status_code, answer.text[:200])
        assert answer.json()["error"]["code"] == "SERVICE_UNAVAILABLE", (params, answer.text)
        assert seconds < REQUEST_BOUND, (params, seconds)
    answer, seconds = timed(lambda: requests.get(base + "/readyz", timeout=30))
    assert answer.status_code == 503, answer.text
    assert seconds < READY_BOUND, seconds
    assert requests.get(base + "/healthz", headers={"Cookie": cookie}, timeout=10).status_code == 200


def logged_in(gateway: Gateway) -> tuple[requests.Session, str]:
    browser = web_login(gateway, "trouble")
    page = browser.get(gateway.base_url + "/", timeout=10).text
    token = page.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
    answer = browser.post(
        gateway.base_url + ENDPOINT, data={"operation": "extendsession"},
        headers={"X-CSRFToken": token}, timeout=10,
    ).json()  # fmt: skip
    return browser, answer["result"]["sessionName"]


@pytest.mark.parametrize("trouble", ["down", "hung"])
def test_redis_trouble_is_answered_cleanly_and_recovers(troubled, trouble: str) -> None:
    gateway, redis_server = troubled
    browser, session_name = logged_in(gateway)
    time.sleep(1.2)  # the append-only file is synced every second
    assert gateway.log_path is not None
    tracebacks_before = gateway.log_path.read_text(errors="replace").count("Traceback")
    assert redis_server.process is not None
    if trouble == "down":
        redis_server.stop()
    else:
        os.kill(redis_server.process.pid, signal.SIGSTOP)
    check_everything_answers(gateway, browser, session_name)
    if trouble == "down":
        redis_server.start()
    else:
        os.kill(redis_server.process.pid, signal.SIGCONT)
    deadline = time.monotonic() + 10
    while True:
        answer = requests.post(
            gateway.base_url + ENDPOINT,
            data={"operation": "listtypes", "sessionName": session_name},
            timeout=10,
        ).json()
        if answer["success"]:
            break
        assert time.monotonic() < deadline, answer
        time.sleep(0.1)
    assert browser.get(gateway.base_url + "/", timeout=10).status_code == 200
    log = gateway.log_path.read_text(errors="replace")
    assert log.count("Traceback") == tracebacks_before, log[-3000:]
    lines = [json.loads(line) for line in log.splitlines() if line.startswith('{"time"')]
    assert any(line["code"] == "SERVICE_UNAVAILABLE" for line in lines)

"""The host app (tests/host/hostapp.py) under real gunicorn (config/gunicorn.conf.py, 2 workers)
over a real redis-server, driven over HTTP by ``requests``: the two main flows of the unit tests,
with both session kinds. Requests land on either worker, so the links hold across processes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from tests.gunicorn_process import ROOT, TEST_GUNICORN_ARGS, _wait_until_serving, stop_gunicorn
from tests.host.hostapp import ACCESS_KEYS, PASSWORDS, SESSION_KINDS
from tests.host.support import RESULT_KEYS, error_code, meta_csrf_token, proof, success
from webservice.standalone.redis_server import RedisServer, free_port

pytestmark = pytest.mark.e2e

HOST_APP = "tests.host.wsgi_host:app"
TIMEOUT = 10


@dataclass
class LiveHost:
    base_url: str
    log_path: Path

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="module")
def host_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server for this module."""
    with RedisServer(tmp_path_factory.mktemp("host-redis")) as server:
        yield server


@pytest.fixture(scope="module", params=SESSION_KINDS)
def live_host(request: pytest.FixtureRequest, host_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveHost]:
    """gunicorn serving the host app with 2 workers, one per session kind. Started like
    tests/gunicorn_process.start_gunicorn does for wsgi:app, with the host app instead."""
    session_kind: str = request.param
    port = free_port()
    log_path = tmp_path_factory.mktemp(f"host-gunicorn-{session_kind}") / "gunicorn.log"
    env = {
        **os.environ,
        "HOST_REDIS_URL": host_redis.url,
        "HOST_SESSION": session_kind,
        "WSGATE_BIND": f"127.0.0.1:{port}",
        "WSGATE_WORKERS": "2",
        "WSGATE_ACCESS_LOG": "-",
        "GUNICORN_CMD_ARGS": TEST_GUNICORN_ARGS,
    }
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py", HOST_APP],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base_url = f"http://127.0.0.1:{port}"
    _wait_until_serving(base_url, process, log_path)
    try:
        yield LiveHost(base_url, log_path)
    finally:
        stop_gunicorn(process)


def call(host: LiveHost, http: requests.Session, operation: str, method: str = "POST",
         headers: dict[str, str] | None = None, **params: str) -> dict[str, Any]:  # fmt: skip
    """One webservice.php call over HTTP; asserts the HTTP 200 JSON envelope."""
    url = f"{host.base_url}/webservice.php"
    data = {"operation": operation, **params}
    if method == "GET":
        response = http.get(url, params=data, headers=headers, timeout=TIMEOUT)
    else:
        response = http.post(url, data=data, headers=headers, timeout=TIMEOUT)
    assert response.status_code == 200, (
        f"{operation}: HTTP {response.status_code} {response.text[:300]}\n--- gunicorn log ---\n{host.log_tail()}"
    )
    assert response.headers["Content-Type"].startswith("application/json"), response.headers
    return response.json()


def browser_login(host: LiveHost, username: str = "alice") -> requests.Session:
    """A new browser, logged in through the host's form."""
    browser = requests.Session()
    response = browser.post(
        f"{host.base_url}/login",
        data={"username": username, "password": PASSWORDS[username]},
        allow_redirects=False, timeout=TIMEOUT,
    )  # fmt: skip
    assert response.status_code == 302, f"host login: {response.status_code}\n{host.log_tail()}"
    page = browser.get(f"{host.base_url}/", allow_redirects=False, timeout=TIMEOUT)
    assert page.status_code == 200 and page.text == f"hello {username}", f"/ after login: {page.status_code} {page.text!r}"
    return browser


def extended_session(host: LiveHost, browser: requests.Session) -> str:
    result = success(
        call(host, browser, "extendsession", headers={"Origin": host.base_url}),
        f"extendsession with Origin {host.base_url}",
    )
    assert set(result) == RESULT_KEYS and result["userId"] == "19x7" and result["version"] == "0.22", result
    return result["sessionName"]


def is_live(host: LiveHost, session_name: str) -> bool:
    """Whether listtypes accepts ``session_name``, from a client without cookies."""
    envelope = call(host, requests.Session(), "listtypes", "GET", sessionName=session_name)
    if envelope["success"]:
        return True
    assert error_code(envelope, "listtypes") == "AUTHENTICATION_REQUIRED", envelope
    return False


def assert_sent_to_login(host: LiveHost, browser: requests.Session) -> None:
    response = browser.get(f"{host.base_url}/", allow_redirects=False, timeout=TIMEOUT)
    assert response.status_code == 302, f"GET / should redirect to login: {response.status_code} {response.text!r}"
    assert urlsplit(response.headers["Location"]).path == "/login", response.headers["Location"]
    whoami = browser.get(f"{host.base_url}/whoami", timeout=TIMEOUT).json()
    assert whoami == {"anonymous": True, "username": None}, whoami


def test_host_logout_ends_the_linked_api_session(live_host: LiveHost) -> None:
    """Over HTTP: host login, extendsession (same Origin), listtypes OK with that sessionName,
    host logout, listtypes AUTHENTICATION_REQUIRED; the browser is anonymous again."""
    browser = browser_login(live_host)
    session_name = extended_session(live_host, browser)
    for _ in range(4):  # on both workers, most likely
        assert is_live(live_host, session_name), "the extended session should authenticate listtypes"

    response = browser.post(f"{live_host.base_url}/logout", allow_redirects=False, timeout=TIMEOUT)
    assert response.status_code == 302, response.status_code

    for _ in range(4):
        assert not is_live(live_host, session_name), "host logout must end the extended session"
    assert_sent_to_login(live_host, browser)


def test_api_logout_logs_the_browser_out(live_host: LiveHost) -> None:
    """Over HTTP: host login, extendsession (X-CSRFToken from the page, no Origin), API logout of
    that session: the browser's next request is anonymous and / redirects to /login; the API
    login of the host's users (api_user_loader) works too."""
    browser = browser_login(live_host)
    token = meta_csrf_token(browser.get(f"{live_host.base_url}/api-page", timeout=TIMEOUT).text)
    result = success(
        call(live_host, browser, "extendsession", headers={"X-CSRFToken": token}), "extendsession with X-CSRFToken"
    )
    session_name = result["sessionName"]
    assert is_live(live_host, session_name)

    success(call(live_host, requests.Session(), "logout", sessionName=session_name), "API logout")
    for _ in range(2):
        assert_sent_to_login(live_host, browser)
    assert not is_live(live_host, session_name)

    script = requests.Session()
    challenge = success(call(live_host, script, "getchallenge", "GET", username="alice"), "getchallenge")
    login = call(live_host, script, "login", username="alice", accessKey=proof(challenge["token"], ACCESS_KEYS["alice"]))
    assert success(login, "API login of alice")["userId"] == "19x7"
    evil = call(live_host, browser_login(live_host), "extendsession", headers={"Origin": "https://evil.example"})
    assert error_code(evil, "foreign Origin over HTTP") == "ACCESS_DENIED"

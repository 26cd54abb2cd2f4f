"""The host app (tests/host/hostapp.py) under real gunicorn (config/gunicorn.conf.py, 2 workers)
over a real redis-server, driven over HTTP by ``requests``: the two main flows of the unit tests,
with both session kinds. Requests land on either worker, so the links hold across processes.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests

from tests.host.hostapp import ACCESS_KEYS, PASSWORDS, SESSION_KINDS
from tests.host.support import (
    RESULT_KEYS,
    TIMEOUT,
    LiveHost,
    call,
    error_code,
    is_live,
    meta_csrf_token,
    proof,
    serve_host,
    success,
)
from webservice.standalone.redis_server import RedisServer

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def host_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server for this module."""
    with RedisServer(tmp_path_factory.mktemp("host-redis")) as server:
        yield server


@pytest.fixture(scope="module", params=SESSION_KINDS)
def live_host(request: pytest.FixtureRequest, host_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveHost]:
    """gunicorn serving the host app with 2 workers, one per session kind."""
    session_kind: str = request.param
    log_path = tmp_path_factory.mktemp(f"host-gunicorn-{session_kind}") / "gunicorn.log"
    with serve_host(host_redis.url, log_path, session_kind) as host:
        yield host


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


def test_the_rest_api_in_the_host(live_host: LiveHost) -> None:
    """Over HTTP, the host gets /v1 from WSGate: a browser logged in with "remember me" lists its
    sessions with the cookie, then logs out by POST /v1/auth/logout: its linked API session ends,
    the session and remember cookies are expired, and it is anonymous, remember cookie or not."""
    browser = requests.Session()
    response = browser.post(
        f"{live_host.base_url}/login",
        data={"username": "alice", "password": PASSWORDS["alice"], "remember": "1"},
        allow_redirects=False, timeout=TIMEOUT,
    )  # fmt: skip
    assert response.status_code == 302 and "remember_token" in browser.cookies, response.headers
    session_name = extended_session(live_host, browser)
    listing = browser.get(f"{live_host.base_url}/v1/me/sessions", timeout=TIMEOUT)
    assert listing.status_code == 200, listing.text
    current = [item for item in listing.json()["data"] if item["current"]]
    assert len(current) == 1 and current[0]["kind"] == "web" and current[0]["linked"], current
    by_bearer = requests.get(
        f"{live_host.base_url}/v1/me/sessions",
        headers={"Authorization": f"Bearer {session_name}"}, timeout=TIMEOUT,
    )  # fmt: skip
    current = [item for item in by_bearer.json()["data"] if item["current"]]
    assert len(current) == 1 and current[0]["kind"] == "api" and current[0]["linked"], current

    out = browser.post(f"{live_host.base_url}/v1/auth/logout", timeout=TIMEOUT)
    assert out.status_code == 200 and out.json() == {"message": "Logged out successfully"}
    expired = [c.lower() for c in out.raw.headers.getlist("Set-Cookie")]
    assert any(c.startswith("remember_token=;") and "01 jan 1970" in c for c in expired), expired
    assert "remember_token" not in browser.cookies
    assert not is_live(live_host, session_name)
    assert_sent_to_login(live_host, browser)

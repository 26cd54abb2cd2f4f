"""The host app (tests/host/hostapp.py) in real Chromium, under real gunicorn (2 workers) over a
real redis-server: the host's own page (/app) gets an API session from its own script
(tests/host/static/api.js: extendsession with X-CSRFToken, then listtypes), and logging out on
either side ends the other."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, Request, expect

from tests.browser.conftest import DESKTOP, STEP_TIMEOUT_MS
from tests.host.hostapp import PASSWORDS
from tests.host.support import LiveHost, is_live, serve_host
from webservice.standalone.redis_server import RedisServer

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

#: The host's login page, with or without ``?next=...``.
AT_LOGIN = re.compile(r"/login(\?.*)?$")
AT_APP = re.compile(r"/app$")


@pytest.fixture(
    scope="module",
    params=[("cookie", True), ("flask-session", False)],
    ids=["cookie-csrfprotect", "flask-session"],
)
def browser_host(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveHost]:
    """The host app under gunicorn over its own redis-server: cookie sessions with Flask-WTF's
    CSRFProtect (the forms carry csrf_token), and Flask-Session sessions in Redis without it."""
    session_kind, csrf = request.param
    workdir = tmp_path_factory.mktemp(f"host-browser-{session_kind}")
    with RedisServer(workdir / "redis") as redis_server:
        with serve_host(redis_server.url, workdir / "gunicorn.log", session_kind, csrf=csrf) as host:
            yield host


@pytest.fixture
def page(chromium, browser_host: LiveHost) -> Iterator[Page]:
    """A page in a fresh browser context (no cookies) on the host app; named ``page`` so that a
    failure leaves a screenshot (tests/browser/conftest.py)."""
    context = chromium.new_context(base_url=browser_host.base_url, viewport=DESKTOP)
    context.set_default_timeout(STEP_TIMEOUT_MS)
    context.set_default_navigation_timeout(STEP_TIMEOUT_MS)
    yield context.new_page()
    context.close()


def log_in_to_app(page: Page, username: str = "alice") -> str:
    """Opens /app, which sends the browser to the host's login form; fills it in; waits for the
    page's script to get an API session and use it. Returns the sessionName the page shows."""
    page.goto("/app")
    expect(page).to_have_url(AT_LOGIN)
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORDS[username])
    page.click("button:has-text('Log in')")
    expect(page).to_have_url(AT_APP)
    expect(page.locator("#username")).to_have_text(username)
    expect(page.locator("#api-status")).to_have_text("listtypes ok")
    expect(page.locator("#api-types")).to_have_text("Users")
    expect(page.locator("#api-user-id")).to_have_text("19x7")
    session_name = page.locator("#api-session-name").inner_text().strip()
    assert session_name, "the page shows no sessionName"
    return session_name


def test_host_page_script_gets_an_api_session_and_logouts_end_it(page: Page, browser_host: LiveHost) -> None:
    posted: list[tuple[str, str | None]] = []  # (body, X-CSRFToken) of each POST to webservice.php

    def on_request(request: Request) -> None:
        if request.method == "POST" and "/webservice.php" in request.url:
            posted.append((request.post_data or "", request.headers.get("x-csrftoken")))

    page.on("request", on_request)

    # 2. Logged in through the host's form, the page's own script gets a working API session.
    first = log_in_to_app(page)
    token = page.locator('meta[name="wsgate-csrf"]').get_attribute("content")
    assert token
    assert posted == [("operation=extendsession", token)], f"not the page's extendsession: {posted}"
    for _ in range(4):  # outside the browser too, on both workers most likely
        assert is_live(browser_host, first), "the page's API session should authenticate listtypes"

    # 3. The host's own logout ends the linked API session.
    page.click("#logout")
    expect(page).to_have_url(AT_LOGIN)
    for _ in range(4):
        assert not is_live(browser_host, first), "host logout must end the page's API session"

    # 4. Logged in again: a new API session; "API logout" of it logs the browser out of the host.
    second = log_in_to_app(page)
    assert second != first
    page.click("#api-logout")
    expect(page.locator("#api-status")).to_have_text("API logged out")
    assert not is_live(browser_host, second), "API logout must end the API session"
    page.reload()
    expect(page).to_have_url(AT_LOGIN)
    page.goto("/")
    expect(page).to_have_url(AT_LOGIN)

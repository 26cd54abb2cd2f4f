"""The REST session API from a real browser: the gateway's own page uses it with its cookie (same
origin), and a page on another origin cannot use the browser's cookie to end its sessions."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import WebUser
from tests.browser.test_web_ui import (
    AT_HOME,
    AT_LOGIN,
    api_access,
    assert_refused,
    assert_works,
    log_in,
)
from tests.wsclient import WebServiceClient

pytestmark = pytest.mark.browser

EVIL = "http://evil.test"

#: ``fetch`` from the page; answers {status, body} or {error} when the browser refused the request.
FETCH = """async ([url, method, headers]) => {
  try {
    const response = await fetch(url, {method, headers, credentials: 'include'});
    return {status: response.status, body: await response.text()};
  } catch (error) {
    return {error: String(error)};
  }
}"""


def test_the_gateways_page_lists_and_ends_sessions_and_logs_out(
    page: Page, web_user: WebUser, api: WebServiceClient
) -> None:
    log_in(page, web_user)
    expect(page).to_have_url(AT_HOME)
    linked, _ = api_access(page)
    elsewhere = api.login(web_user.username, web_user.access_key)["result"]["sessionName"]

    listing = page.evaluate(FETCH, ["/v1/me/sessions", "GET", {}])
    assert listing["status"] == 200, listing
    data = json.loads(listing["body"])["data"]
    [current] = [item for item in data if item["current"]]
    assert current["kind"] == "web" and current["linked"]
    [other] = [item for item in data if not item["linked"]]

    # A DELETE from the page carries Origin: the gateway's own, so the cookie suffices.
    ended = page.evaluate(FETCH, [f"/v1/me/sessions/{other['id']}", "DELETE", {}])
    assert ended["status"] == 204, ended
    assert_refused(api, elsewhere)
    assert_works(api, linked)

    out = page.evaluate(FETCH, ["/v1/auth/logout", "POST", {}])
    assert out["status"] == 200, out
    page.reload()
    expect(page).to_have_url(AT_LOGIN)
    assert_refused(api, linked)


def test_another_origins_page_cannot_end_the_browsers_sessions(
    page: Page, web_user: WebUser, api: WebServiceClient, live_gateway
) -> None:
    """The attack: a page on another origin, opened by the logged-in browser, fetches the
    gateway's REST API with the browser's credentials. DELETE is no simple request: the browser
    asks first (OPTIONS), the gateway grants no CORS, and the DELETE is never sent; the listing
    is unreadable; every session lives on. (The cookie, SameSite=Lax, would not even be sent.)"""
    log_in(page, web_user)
    expect(page).to_have_url(AT_HOME)
    linked, _ = api_access(page)
    page.context.route(
        re.compile(r"^http://evil\.test/.*"),
        lambda route: route.fulfill(status=200, content_type="text/html", body="<p>hi</p>"),
    )
    page.goto(f"{EVIL}/")
    base = live_gateway.base_url
    for method, path in (
        ("DELETE", "/v1/me/sessions"),
        ("DELETE", "/v1/auth/session"),
        ("GET", "/v1/me/sessions"),
    ):
        answer = page.evaluate(FETCH, [base + path, method, {}])
        assert "error" in answer, (method, path, answer)
    with_header = page.evaluate(FETCH, [base + "/v1/me/sessions", "DELETE", {"X-CSRFToken": "guess"}])
    assert "error" in with_header, with_header
    assert_works(api, linked)
    page.goto(base + "/")
    expect(page).to_have_url(AT_HOME)

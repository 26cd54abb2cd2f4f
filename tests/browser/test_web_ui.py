"""The web UI in a real browser: log in, "API access" (extendsession), the linked API session used
from outside the browser, logging out from either side, and the sessions page."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import PHONE, WebUser
from tests.wsclient import WebServiceClient

pytestmark = pytest.mark.browser

AT_LOGIN = re.compile(r"/login$")
AT_HOME = re.compile(r"/$")
AT_SESSIONS = re.compile(r"/sessions$")
USER_ID = re.compile(r"^19x\d+$")


def log_in(page: Page, user: WebUser, password: str | None = None) -> None:
    page.goto("/login")
    page.fill("#username", user.username)
    page.fill("#password", user.password if password is None else password)
    page.click("#login")


def api_access(page: Page) -> tuple[str, str]:
    """Clicks "API access" and returns the sessionName and userId the page shows."""
    shown = page.locator("#api-session-name")
    before = shown.text_content() or ""
    page.click("#api-access")
    expect(page.locator("#api-session")).to_be_visible()
    expect(shown).not_to_be_empty()
    if before:  # a second click gives a new API session
        expect(shown).not_to_have_text(before)
    expect(page.locator("#api-error")).to_be_hidden()
    return shown.inner_text().strip(), page.locator("#api-user-id").inner_text().strip()


def assert_works(api: WebServiceClient, session_name: str) -> None:
    answer = api.call("listtypes", sessionName=session_name)
    assert answer["success"] is True, answer
    assert "Users" in answer["result"]["types"]


def assert_refused(api: WebServiceClient, session_name: str) -> None:
    answer = api.call("listtypes", sessionName=session_name)
    assert answer == {
        "success": False,
        "error": {"code": "AUTHENTICATION_REQUIRED", "message": "Authentication required"},
        "moreinfo": None,
    }


def fits_width(page: Page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_login_api_access_and_logout_in_the_page_ends_the_api_session(
    page: Page, web_user: WebUser, api: WebServiceClient, screenshot
):
    page.goto("/")
    expect(page).to_have_url(AT_LOGIN)

    log_in(page, web_user, password="not the password")
    expect(page.locator(".error[role=alert]")).to_have_text("Invalid username or password")
    expect(page.locator("#username")).to_have_value(web_user.username)
    screenshot(page, "login-error")

    log_in(page, web_user)
    expect(page).to_have_url(AT_HOME)
    expect(page.locator("#username")).to_have_text(web_user.username)
    expect(page.locator("#user-id")).to_have_text(web_user.user_id)

    session_name, user_id = api_access(page)
    assert USER_ID.match(user_id), user_id
    assert user_id == web_user.user_id
    assert session_name
    screenshot(page, "home-api-access")
    page.set_viewport_size(PHONE)
    assert fits_width(page), "the home page scrolls sideways at phone width"
    screenshot(page, "home-api-access-narrow")

    # The page's API session works from outside the browser (no cookie, just the sessionName).
    assert_works(api, session_name)

    page.click("#logout")
    expect(page).to_have_url(AT_LOGIN)
    expect(page.locator(".notice")).to_contain_text("You are logged out")
    assert_refused(api, session_name)
    page.goto("/")
    expect(page).to_have_url(AT_LOGIN)


def test_api_logout_of_the_linked_session_logs_the_page_out(
    page: Page, web_user: WebUser, api: WebServiceClient
):
    log_in(page, web_user)
    expect(page).to_have_url(AT_HOME)
    session_name, _ = api_access(page)
    assert_works(api, session_name)

    answer = api.call("logout", sessionName=session_name)
    assert answer == {"success": True, "result": {"message": "successfull"}, "moreinfo": None}

    page.reload()
    expect(page).to_have_url(AT_LOGIN)
    expect(page.locator("#logout")).to_have_count(0)
    assert_refused(api, session_name)


def test_sessions_page_marks_this_browser_and_ends_the_others(
    page: Page, web_user: WebUser, api: WebServiceClient, screenshot
):
    log_in(page, web_user)
    expect(page).to_have_url(AT_HOME)
    first, _ = api_access(page)
    second, _ = api_access(page)
    assert first != second

    # A second login of the same user, elsewhere: an API login is a family of its own.
    elsewhere = api.login(web_user.username, web_user.access_key)
    assert elsewhere["success"], elsewhere
    other = elsewhere["result"]["sessionName"]
    assert_works(api, other)

    page.click("nav >> text=Sessions")
    expect(page).to_have_url(AT_SESSIONS)
    rows = page.locator("li.session")
    expect(rows).to_have_count(4)
    mine = page.locator("li.session.mine")
    expect(mine).to_have_count(3)
    this_browser = mine.filter(has=page.locator(".tag", has_text=re.compile(r"^this browser$")))
    expect(this_browser).to_have_count(1)
    expect(this_browser.locator(".what strong")).to_have_text("Web")
    linked = mine.filter(has=page.locator(".tag", has_text=re.compile(r"^linked to this browser$")))
    expect(linked).to_have_count(2)
    for index in range(2):
        expect(linked.nth(index).locator(".what strong")).to_have_text("API")
    foreign = page.locator("li.session:not(.mine)")
    expect(foreign.locator(".what strong")).to_have_text("API")
    expect(foreign.locator(".tag")).to_have_count(0)  # a lone API login: nothing linked to it
    screenshot(page, "sessions")
    page.set_viewport_size(PHONE)
    assert fits_width(page), "the sessions page scrolls sideways at phone width"
    screenshot(page, "sessions-narrow")

    page.click("#end-others")
    expect(page).to_have_url(AT_SESSIONS)
    expect(page.locator(".notice")).to_have_text(
        "Ended 1 other login(s) and the sessions linked to them."
    )
    expect(rows).to_have_count(3)
    expect(mine).to_have_count(3)

    assert_refused(api, other)
    assert_works(api, first)
    assert_works(api, second)
    page.goto("/")
    expect(page).to_have_url(AT_HOME)
    expect(page.locator("#username")).to_have_text(web_user.username)


def test_pages_fit_a_phone(phone_page: Page, web_user: WebUser, screenshot):
    """Like a phone: the meta viewport applies, nothing scrolls sideways, the buttons are usable."""
    page = phone_page
    page.goto("/")
    expect(page).to_have_url(AT_LOGIN)
    assert fits_width(page), "the login page scrolls sideways on a phone"
    screenshot(page, "phone-login")

    log_in(page, web_user)
    expect(page).to_have_url(AT_HOME)
    api_access(page)
    assert fits_width(page), "the home page scrolls sideways on a phone"
    screenshot(page, "phone-home-api-access")

    page.goto("/sessions")
    expect(page.locator("li.session.mine")).to_have_count(2)
    assert fits_width(page), "the sessions page scrolls sideways on a phone"
    for button in ("#end-others", "#end-all", "#logout"):
        box = page.locator(button).bounding_box()
        assert box is not None, button
        assert 0 <= box["x"] and box["x"] + box["width"] <= PHONE["width"], button
    screenshot(page, "phone-sessions")

"""The pages under their strict Content-Security-Policy in a real browser: the stylesheet applies,
the script runs ("API access" works), the browser reports no violation, and an injected inline
script is refused."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import WebUser
from tests.browser.test_web_ui import AT_HOME, AT_SESSIONS, api_access, log_in

pytestmark = pytest.mark.browser

#: Collects the page's CSP violation events (the page itself never reads this).
LISTEN = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__violations.push(event.violatedDirective + " " + event.blockedURI);
});
"""


def test_pages_work_under_the_policy_with_no_violation(page: Page, web_user: WebUser):
    console: list[str] = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    page.context.add_init_script(LISTEN)

    response = page.goto("/login")
    assert response is not None
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    # The stylesheet applied: the page background is the one style.css sets.
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(245, 247, 250)", background

    log_in(page, web_user)
    expect(page).to_have_url(AT_HOME)
    session_name, _ = api_access(page)  # the script ran and its fetch was allowed
    assert session_name
    page.click("nav >> text=Sessions")
    expect(page).to_have_url(AT_SESSIONS)

    violations = page.evaluate("window.__violations")
    assert violations == [], violations
    refused = [line for line in console if re.search(r"Content Security Policy|Refused to", line)]
    assert refused == [], refused


def test_inline_script_is_refused(page: Page):
    """The policy is in force: a script injected into the page does not run, and the browser
    reports it (which also shows that the violation listener above hears violations)."""
    page.context.add_init_script(LISTEN)
    page.goto("/login")
    page.evaluate("""() => {
        const script = document.createElement("script");
        script.textContent = "window.__injected = true;";
        document.body.appendChild(script);
    }""")
    page.wait_for_function("window.__violations.length > 0")
    assert page.evaluate("window.__injected === undefined")
    violations = page.evaluate("window.__violations")
    assert any(v.startswith("script-src") for v in violations), violations

"""The sessions page's End this one / End all others / End all: each ending is in the audit trail
(event ``end``, via ``web``), written in the round trip that ends the sessions, never with a
secret; and counted in the metrics."""

from __future__ import annotations

import pytest

from tests.unit.web.support import BROWSER_AGENT, Env, family_of, make_env, member_of
from tests.unit.web.test_audit import FIELDS, entries
from webservice.serving import metrics
from webservice.store.tokens import handle_of


def revocations(reason: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "wsgate_session_revocations_total", {"via": "web", "reason": reason}
    )
    return value or 0.0


@pytest.fixture
def env() -> Env:
    return make_env()


@pytest.fixture
def alice(env: Env):
    return env.add_user("alice")


def api_handle(session_name: str) -> str:
    return handle_of(family_of(session_name), member_of(session_name))


def browser_handle(browser) -> str:
    return handle_of(browser.family_id, browser.member)


def new_entries(env: Env, before: int) -> list[dict[str, str]]:
    return entries(env)[before:]


def test_end_this_one_is_audited_with_the_handle_ended_and_who_asked(env, alice):
    browser = env.browser(address="198.51.100.20")
    browser.login("alice")
    other = env.api_login(alice)
    before, counted = len(entries(env)), revocations("endsession")

    response = browser.post("/sessions/end", handle=api_handle(other))

    assert response.status_code == 302 and response.location == "/sessions"
    assert not env.alive(other)
    assert new_entries(env, before) == [
        {
            "event": "end",
            "via": "web",
            "user": "alice",
            "handle": api_handle(other),
            "address": "198.51.100.20",
            "agent": BROWSER_AGENT,
            "reason": "endsession",
            "detail": f"by {browser_handle(browser)}",
        }
    ]
    assert revocations("endsession") == counted + 1


def test_end_this_one_on_the_own_login_is_audited_once(env, alice):
    browser = env.browser()
    browser.login("alice")
    own = browser_handle(browser)
    before = len(entries(env))

    response = browser.post("/sessions/end", handle=own)

    assert response.status_code == 302 and response.location == "/login"
    [entry] = new_entries(env, before)
    assert (entry["event"], entry["handle"], entry["reason"], entry["detail"]) == (
        "end",
        own,
        "endsession",
        f"by {own}",
    )


@pytest.mark.parametrize("handle", ["garbage", "x" * 300, "AAAAAAAAAAAAAAAAAAAAAA:AAAAAAAA"])
def test_end_this_one_writes_nothing_when_nothing_ended(env, alice, handle):
    browser = env.browser()
    browser.login("alice")
    before, counted = len(entries(env)), revocations("endsession")
    response = browser.post("/sessions/end", handle=handle)
    assert response.status_code == 302 and response.location == "/sessions"
    assert new_entries(env, before) == []
    assert revocations("endsession") == counted


def test_end_all_others_is_audited_with_this_browser_kept(env, alice):
    browser = env.browser(address="198.51.100.21")
    browser.login("alice")
    first, second = env.api_login(alice), env.api_login(alice)
    before, counted = len(entries(env)), revocations("endallsessions")

    response = browser.post("/sessions/end-others")

    assert response.status_code == 302 and response.location == "/sessions"
    assert browser.logged_in() and not env.alive(first) and not env.alive(second)
    assert new_entries(env, before) == [
        {
            "event": "end",
            "via": "web",
            "user": "alice",
            "handle": browser_handle(browser),
            "address": "198.51.100.21",
            "agent": BROWSER_AGENT,
            "reason": "endallsessions",
            "detail": "others only",
        }
    ]
    assert revocations("endallsessions") == counted + 2


def test_end_all_is_audited_once_and_logs_this_browser_out(env, alice):
    browser = env.browser(address="198.51.100.22")
    browser.login("alice")
    own = browser_handle(browser)
    linked = browser.extended_session()
    other = env.api_login(alice)
    before, counted = len(entries(env)), revocations("endallsessions")

    response = browser.post("/sessions/end-all")

    assert response.status_code == 302 and response.location == "/login"
    assert not browser.logged_in() and not env.alive(linked) and not env.alive(other)
    assert new_entries(env, before) == [
        {
            "event": "end",
            "via": "web",
            "user": "alice",
            "handle": own,
            "address": "198.51.100.22",
            "agent": BROWSER_AGENT,
            "reason": "endallsessions",
            "detail": "",
        }
    ]
    # Two logins ended: this browser's (with its linked API session) and the API login.
    assert revocations("endallsessions") == counted + 2


def test_the_entries_hold_no_secret(env, alice):
    browser = env.browser()
    browser.login("alice")
    cookie = browser.cookie
    linked = browser.extended_session()
    other = env.api_login(alice)
    browser.post("/sessions/end", handle=api_handle(other))
    browser.post("/sessions/end-others")
    browser.post("/sessions/end-all")
    text = repr(entries(env))
    for secret in (cookie, linked, other, linked.split(".")[1], other.split(".")[1]):
        assert secret not in text
    assert alice.access_key not in text
    for entry in entries(env):
        assert set(entry) == FIELDS

"""``extendsession`` (protocol.md §4-5, §7): an API session of its own, linked to the browser's
web login, given only to the gateway's own pages (or trusted origins); and the linked logouts."""

from __future__ import annotations

import time

import pytest

from tests.unit.web.support import (
    ENDPOINT,
    OWN_ORIGIN,
    Env,
    envelope,
    failed,
    family_of,
    make_env,
    member_of,
    ok,
)
from webservice.store.tokens import handle_of

REFUSED = "ACCESS_DENIED"


@pytest.fixture(params=["redis", "cookie"])
def env(request: pytest.FixtureRequest) -> Env:
    """Both kinds of the standalone server's web sessions: Flask-Session's in Redis (a browser's
    extendsession then takes Flask's path) and the signed cookie (then the lean path takes it:
    webservice/api/lean_path.py)."""
    return make_env({"WEB_SESSIONS": request.param})


@pytest.fixture
def browser(env: Env, alice):
    """A browser logged in to the web UI as alice."""
    browser = env.browser()
    browser.login("alice")
    return browser


def assert_no_cors(response) -> None:
    for header in response.headers.keys():
        assert not header.lower().startswith("access-control-"), dict(response.headers)


# --- Who gets one ------------------------------------------------------------------------------


def test_without_the_cookie_authentication_is_required(env, browser):
    token = browser.csrf_token()
    stranger = env.api()  # no cookies at all
    for headers in ({}, {"X-CSRFToken": token}, {"Origin": OWN_ORIGIN}):
        response = stranger.post(ENDPOINT, data={"operation": "extendsession"}, headers=headers)
        body = envelope(response)
        failed(body, "AUTHENTICATION_REQUIRED", "Authentication required")


def test_an_empty_cookie_counts_as_none(env, browser):
    stranger = env.browser()
    stranger.set_cookie("")
    body = stranger.extend({"Origin": OWN_ORIGIN}, with_token=False)
    failed(body, "AUTHENTICATION_REQUIRED", "Authentication required")


def test_a_cookie_that_is_not_logged_in_fails(env, alice):
    visitor = env.browser()
    visitor.csrf_token()  # has a web session (with a CSRF token), but never logged in
    assert visitor.cookie
    before = env.snapshot()
    failed(visitor.extend(), "AUTHENTICATION_FAILURE", "Authentication Failed")
    failed(visitor.extend({"Origin": OWN_ORIGIN}, with_token=False), "AUTHENTICATION_FAILURE",
           "Authentication Failed")
    assert env.families() == set()
    assert env.snapshot() == before


def test_a_random_cookie_fails(env, alice):
    visitor = env.browser()
    visitor.set_cookie("x" * 43)
    body = visitor.extend({"Origin": OWN_ORIGIN}, with_token=False)
    failed(body, "AUTHENTICATION_FAILURE", "Authentication Failed")
    assert env.families() == set()


def test_logged_in_with_the_csrf_header_gets_a_session(env, alice, browser):
    result = ok(browser.extend())
    assert set(result) == {"sessionName", "userId", "version", "vtigerVersion"}
    assert result["userId"] == f"19x{alice.id}"
    assert result["version"] == "0.22"
    assert result["vtigerVersion"] == env.gateway.settings["VTIGER_VERSION"]
    session_name = result["sessionName"]
    assert env.alive(session_name)


def test_the_api_session_shares_no_secret_with_the_cookie(env, browser):
    cookie = browser.cookie
    session_name = browser.extended_session()
    assert session_name != cookie
    assert cookie not in session_name and session_name not in cookie
    # Not even a piece of it: no run of 8 characters of the cookie is in the session name.
    assert not any(cookie[i : i + 8] in session_name for i in range(len(cookie) - 7))
    # And Redis keeps neither the API session's secret nor its full id.
    secret = session_name.split(".")[1]
    everything = env.all_bytes()
    assert secret.encode() not in everything and session_name.encode() not in everything


def test_each_call_adds_a_new_member_to_the_same_family(env, browser):
    names = [browser.extended_session() for _ in range(4)]
    assert len(set(names)) == 4
    assert {family_of(name) for name in names} == {browser.family_id}
    assert len({member_of(name) for name in names} | {browser.member}) == 5
    family = env.family(browser.family_id)
    assert family["r"] == browser.member  # the web session stays the root
    members = {name[2:] for name in family if name.startswith("i:")}
    assert members == {browser.member} | {member_of(name) for name in names}
    for name in names:
        kind = family[f"i:{member_of(name)}"].split("\x1f")[1]
        assert kind == "api"
        assert env.alive(name)
    assert env.families() == {browser.family_id}


def test_the_api_session_records_the_calling_client(env, alice):
    browser = env.browser(user_agent="PageScript/3.0", address="198.51.100.23")
    browser.login("alice")
    session_name = browser.extended_session()
    info = env.family(browser.family_id)[f"i:{member_of(session_name)}"].split("\x1f")
    assert info[1:] == ["api", "198.51.100.23", "PageScript/3.0"]


# --- Cross-site protection ---------------------------------------------------------------------


def test_no_origin_and_no_token_is_refused_and_changes_nothing(env, browser):
    browser.csrf_token()
    before = env.snapshot()
    body = browser.extend(with_token=False)
    failed(body, REFUSED)
    assert "X-CSRFToken" in body["error"]["message"]
    assert env.snapshot() == before
    assert browser.logged_in()


@pytest.mark.parametrize("token", ["", "garbage", "wrong-signature"])
def test_a_wrong_token_is_refused(env, browser, token):
    if token == "wrong-signature":
        good = browser.csrf_token()
        token = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    browser.csrf_token()
    before = env.snapshot()
    failed(browser.extend({"X-CSRFToken": token}), REFUSED)
    assert env.snapshot() == before


def test_another_browsers_token_is_refused(env, alice, browser):
    other = env.browser()
    other.login("alice")
    foreign_token = other.csrf_token()
    browser.csrf_token()
    before = env.snapshot()
    failed(browser.extend({"X-CSRFToken": foreign_token}), REFUSED)
    assert env.snapshot() == before


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "null",
        "http://localhost:8080",
        "https://localhost",
        "http://localhost.evil.example",
        "http://evil.example/http://localhost",
        "",
    ],
)
def test_a_foreign_origin_is_refused_even_with_a_valid_token(env, browser, origin):
    token = browser.csrf_token()
    before = env.snapshot()
    response = browser.client.post(
        ENDPOINT,
        data={"operation": "extendsession"},
        headers={"Origin": origin, "X-CSRFToken": token},
    )
    failed(envelope(response), REFUSED)
    assert_no_cors(response)
    assert env.snapshot() == before
    assert browser.logged_in()


def test_the_gateways_own_origin_needs_no_token(env, browser):
    session_name = ok(browser.extend({"Origin": OWN_ORIGIN}, with_token=False))["sessionName"]
    assert family_of(session_name) == browser.family_id
    assert env.alive(session_name)


def test_a_trusted_origin_needs_no_token():
    env = make_env({"TRUSTED_ORIGINS": ["https://app.example.com"]})
    env.add_user("alice")
    browser = env.browser()
    browser.login("alice")
    response = browser.client.post(
        ENDPOINT, data={"operation": "extendsession"}, headers={"Origin": "https://app.example.com"}
    )
    session_name = ok(envelope(response))["sessionName"]
    assert env.alive(session_name)
    assert_no_cors(response)
    # Only that one: others stay foreign.
    lookalike = {"Origin": "https://app.example.com.evil.example"}
    failed(browser.extend(lookalike, with_token=False), REFUSED)
    failed(browser.extend({"Origin": "https://other.example.com"}, with_token=False), REFUSED)


def test_webservice_php_never_answers_with_cors_headers(env, browser):
    token = browser.csrf_token()
    answers = [
        browser.client.post(
            ENDPOINT,
            data={"operation": "extendsession"},
            headers={"Origin": "https://evil.example", "X-CSRFToken": token},
        ),
        browser.client.post(
            ENDPOINT, data={"operation": "extendsession"}, headers={"Origin": OWN_ORIGIN}
        ),
        browser.client.get(
            ENDPOINT,
            query_string={"operation": "listtypes"},
            headers={"Origin": "https://evil.example"},
        ),
    ]
    for response in answers:
        envelope(response)
        assert_no_cors(response)
    preflight = browser.client.options(
        ENDPOINT,
        headers={
            "Origin": "https://evil.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "X-CSRFToken, corebos-authorization",
        },
    )
    assert_no_cors(preflight)
    # protocol.md §3: every answer of the endpoint is HTTP 200 with the JSON envelope.
    envelope(preflight)


# --- Linked logout -----------------------------------------------------------------------------


def test_web_logout_ends_every_extended_session(env, alice, browser):
    extended = [browser.extended_session() for _ in range(3)]
    browser.post("/logout")
    assert not browser.logged_in()
    assert not any(env.alive(name) for name in extended)
    assert env.families() == set()


def test_api_logout_of_an_extended_session_ends_the_web_login(env, alice, browser):
    first, second, third = (browser.extended_session() for _ in range(3))
    body = env.call(env.api(), "logout", sessionName=second)
    assert ok(body) == {"message": "successfull"}
    response = browser.get("/")
    assert response.status_code == 302 and response.location == "/login"
    assert not env.alive(first) and not env.alive(third) and not env.alive(second)
    failed(browser.extend(), "AUTHENTICATION_FAILURE", "Authentication Failed")


def test_web_logout_leaves_standalone_api_logins_alone(env, alice, browser):
    standalone = [env.api_login(alice) for _ in range(2)]
    extended = browser.extended_session()
    other_browser = env.browser()
    other_browser.login("alice")
    browser.post("/logout")
    assert not env.alive(extended)
    assert all(env.alive(name) for name in standalone)
    assert other_browser.logged_in()


def test_an_idle_web_root_ends_its_family(env, alice, browser):
    extended = [browser.extended_session() for _ in range(2)]
    standalone = env.api_login(alice)
    # The extended sessions are busy; the web login itself is not.
    for name in extended:
        assert env.alive(name)
    family = browser.family_id
    env.age_member(family, browser.member)
    assert not browser.logged_in()
    assert not any(env.alive(name) for name in extended)
    assert not env.redis.exists(env.family_key(family))
    assert env.alive(standalone)


def test_an_idle_web_root_found_by_an_api_member_ends_the_family(env, alice, browser):
    extended = browser.extended_session()
    env.age_member(browser.family_id, browser.member)
    # The family key's own expiry follows the root: once it passes, the whole family is gone.
    env.redis.pexpire(env.family_key(browser.family_id), 1)
    time.sleep(0.01)
    assert not env.alive(extended)
    assert not browser.logged_in()


def test_an_idle_extended_session_dies_alone(env, alice, browser):
    idle, busy = browser.extended_session(), browser.extended_session()
    env.age_member(browser.family_id, member_of(idle))
    assert not env.alive(idle)
    assert f"i:{member_of(idle)}" not in env.family(browser.family_id)
    assert env.alive(busy)
    assert browser.logged_in()
    assert env.alive(browser.extended_session())


def test_extendsession_on_an_idle_web_login_fails(env, alice, browser):
    token = browser.csrf_token()
    env.age_member(browser.family_id, browser.member)
    body = browser.extend({"X-CSRFToken": token})
    failed(body, "AUTHENTICATION_FAILURE", "Authentication Failed")
    assert env.families() == set()
    assert not browser.logged_in()


def test_extendsession_after_the_absolute_timeout_fails(env, alice, browser):
    token = browser.csrf_token()
    extended = browser.extended_session()
    env.redis.hset(env.family_key(browser.family_id), "x", 1)
    body = browser.extend({"X-CSRFToken": token})
    failed(body, "AUTHENTICATION_FAILURE", "Authentication Failed")
    assert not env.alive(extended)
    assert env.families() == set()


def test_extendsession_after_a_web_logout_in_another_tab_fails(env, alice, browser):
    sid = browser.cookie
    browser.post("/logout")
    # A page of the gateway still open in another tab sends the old cookie.
    tab = env.browser()
    tab.set_cookie(sid)
    body = tab.extend({"Origin": OWN_ORIGIN}, with_token=False)
    failed(body, "AUTHENTICATION_FAILURE", "Authentication Failed")
    assert env.families() == set()


def test_at_the_cap_a_dead_session_makes_room_and_no_live_one_is_ended() -> None:
    """A session idle past the timeout is dead already: at the family's cap it goes, unannounced
    (as a check of its own would drop it), rather than the oldest live one."""
    env = make_env({"MAX_SESSIONS_PER_FAMILY": 3, "WEB_SESSIONS": "cookie"})
    env.add_user("alice")
    browser = env.browser()
    browser.login("alice")
    oldest, younger = browser.extended_session(), browser.extended_session()
    env.age_member(family_of(oldest), member_of(oldest))
    newest = browser.extended_session()
    assert not env.alive(oldest)
    assert env.alive(younger) and env.alive(newest)
    stream = env.redis.xrange(env.gateway.keys.audit_log())
    assert [fields["reason"] for _, fields in stream if fields["event"] == "end"] == []
    # Still at the cap, with nobody dead: the oldest live one ends, and the trail says so.
    browser.extended_session()
    assert not env.alive(younger)
    stream = env.redis.xrange(env.gateway.keys.audit_log())
    ended = [fields for _, fields in stream if fields["event"] == "end"]
    assert [(e["reason"], e["handle"]) for e in ended] == [
        ("session_cap", handle_of(family_of(younger), member_of(younger)))
    ]

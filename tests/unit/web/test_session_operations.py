"""Session self-service for API clients: ``listsessions``, ``endsession``, ``endallsessions``."""

from __future__ import annotations

import json
import time

from tests.unit.web.support import (
    API_AGENT,
    BROWSER_AGENT,
    Env,
    failed,
    family_of,
    member_of,
    ok,
)

FIELDS = {"handle", "kind", "linked", "created", "lastUsed", "address", "userAgent", "current"}


def handle(session_name: str) -> str:
    return f"{family_of(session_name)}:{member_of(session_name)[:8]}"


def listsessions(env: Env, session_name: str) -> list[dict]:
    return ok(env.call(env.api(), "listsessions", "GET", sessionName=session_name))


def endsession(env: Env, session_name: str, **params) -> dict:
    return env.call(env.api(), "endsession", sessionName=session_name, **params)


# --- listsessions ------------------------------------------------------------------------------


def test_listsessions_needs_a_session(env):
    body = env.call(env.api(), "listsessions", "GET")
    failed(body, "AUTHENTICATION_REQUIRED", "Authentication required")


def test_listsessions_lists_the_callers_user_only(env, alice, bob):
    started = int(time.time())
    caller = env.api_login(alice, env.api(user_agent=API_AGENT, address="203.0.113.5"))
    browser = env.browser(user_agent=BROWSER_AGENT, address="198.51.100.8")
    browser.login("alice")
    extended = browser.extended_session()
    bobs = env.api_login(bob)

    listed = listsessions(env, caller)
    assert all(set(item) == FIELDS for item in listed), listed
    by_handle = {item["handle"]: item for item in listed}
    web_handle = f"{browser.family_id}:{browser.member[:8]}"
    assert set(by_handle) == {handle(caller), handle(extended), web_handle}
    assert handle(bobs) not in by_handle

    mine = by_handle[handle(caller)]
    assert mine["current"] is True
    assert mine["kind"] == "api" and mine["linked"] is False
    assert mine["address"] == "203.0.113.5" and mine["userAgent"] == API_AGENT

    web = by_handle[web_handle]
    assert web["current"] is False
    assert web["kind"] == "web" and web["linked"] is True
    assert web["address"] == "198.51.100.8" and web["userAgent"] == BROWSER_AGENT

    linked = by_handle[handle(extended)]
    assert linked["kind"] == "api" and linked["linked"] is True and linked["current"] is False

    for item in listed:
        assert isinstance(item["created"], int) and isinstance(item["lastUsed"], int)
        assert started - 1 <= item["created"] <= item["lastUsed"] <= int(time.time()) + 1
    assert sum(item["current"] for item in listed) == 1
    # Newest first.
    assert [item["created"] for item in listed] == sorted(
        (item["created"] for item in listed), reverse=True
    )

    # Bob sees only his own.
    assert [item["handle"] for item in listsessions(env, bobs)] == [handle(bobs)]


def test_listsessions_marks_the_extended_caller_as_current(env, alice):
    browser = env.browser()
    browser.login("alice")
    extended = browser.extended_session()
    listed = listsessions(env, extended)
    current = [item["handle"] for item in listed if item["current"]]
    assert current == [handle(extended)]


def test_listsessions_reveals_no_secret(env, alice):
    caller = env.api_login(alice)
    other = env.api_login(alice)
    browser = env.browser()
    browser.login("alice")
    extended = browser.extended_session()
    text = json.dumps(listsessions(env, caller))
    for secret in (caller, other, extended):
        assert secret not in text
        assert secret.split(".")[1] not in text
        # Not even the stored hash of a secret in full.
        assert member_of(secret) not in text
    assert browser.cookie not in text
    assert browser.member not in text
    assert alice.access_key not in text


def test_listsessions_leaves_out_idle_and_ended_sessions(env, alice):
    caller = env.api_login(alice)
    idle = env.api_login(alice)
    ended = env.api_login(alice)
    ok(env.call(env.api(), "logout", sessionName=ended))
    env.age_member(family_of(idle), member_of(idle))
    assert [item["handle"] for item in listsessions(env, caller)] == [handle(caller)]


# --- endsession --------------------------------------------------------------------------------


def test_endsession_ends_that_family(env, alice):
    caller = env.api_login(alice)
    target = env.api_login(alice)
    body = endsession(env, caller, handle=handle(target))
    assert ok(body) == {"message": "ended"}
    assert not env.alive(target)
    assert env.alive(caller)
    assert family_of(target) not in env.families()
    assert family_of(target) not in env.redis.zrange(
        env.gateway.keys.user_families(alice.id), 0, -1
    )


def test_endsession_of_a_linked_member_ends_the_web_login_and_its_siblings(env, alice):
    caller = env.api_login(alice)
    browser = env.browser()
    browser.login("alice")
    first, second = browser.extended_session(), browser.extended_session()
    ok(endsession(env, caller, handle=handle(first)))
    assert not browser.logged_in()
    assert not env.alive(first) and not env.alive(second)
    assert env.alive(caller)


def test_endsession_of_a_web_member_ends_its_api_sessions(env, alice):
    caller = env.api_login(alice)
    browser = env.browser()
    browser.login("alice")
    extended = browser.extended_session()
    ok(endsession(env, caller, handle=f"{browser.family_id}:{browser.member[:8]}"))
    assert not browser.logged_in()
    assert not env.alive(extended)


def test_endsession_of_the_callers_own_handle_ends_the_caller(env, alice):
    caller = env.api_login(alice)
    ok(endsession(env, caller, handle=handle(caller)))
    assert not env.alive(caller)


def test_endsession_needs_the_handle(env, alice):
    caller = env.api_login(alice)
    for params in ({}, {"handle": ""}):
        body = endsession(env, caller, **params)
        message = failed(body, "MANDATORY_FIELDS_MISSING")
        assert "handle" in message
    assert env.alive(caller)


def test_endsession_needs_a_session(env, alice):
    target = env.api_login(alice)
    failed(env.call(env.api(), "endsession", handle=handle(target)), "AUTHENTICATION_REQUIRED",
           "Authentication required")
    assert env.alive(target)


def test_endsession_refuses_another_users_handle(env, alice, bob):
    caller = env.api_login(alice)
    bobs = env.api_login(bob)
    browser = env.browser()
    browser.login("bob")
    before = env.snapshot(ignore_last_use=True)
    for other in (handle(bobs), f"{browser.family_id}:{browser.member[:8]}"):
        message = failed(endsession(env, caller, handle=other), "INVALID_PARAMETER")
        assert "handle" in message
    assert env.snapshot(ignore_last_use=True) == before
    assert env.alive(bobs) and browser.logged_in()


def test_endsession_refuses_garbage_handles_without_changing_anything(env, alice):
    caller = env.api_login(alice)
    other = env.api_login(alice)
    family, member = family_of(other), member_of(other)
    garbage = [
        "garbage",
        family,  # a family id alone
        f"{family}:",
        f"{family}:{member[:7]}",
        f"{family}:{member[:9]}",
        f"{family}:{member}",
        f"{family[:-1]}:{member[:8]}",
        f"{family}x:{member[:8]}",
        f"{other}",  # the session id itself is not a handle
        "*:*",
        "../" * 40,
        "x" * 5000,
        "\u00e9" * 30 + ":" + "\u00e9" * 8,
        f"{family}:AAAAAAAA",  # the user's own live family, but no such member
    ]
    before = env.snapshot(ignore_last_use=True)
    for value in garbage:
        message = failed(endsession(env, caller, handle=value), "INVALID_PARAMETER")
        assert "handle" in message, (value, message)
        assert env.snapshot(ignore_last_use=True) == before, value
    assert env.alive(other) and env.alive(caller)


def test_a_refused_endsession_does_not_hide_a_family_from_endallsessions(env, alice):
    """A family stays indexed under its user, so "end all" still finds it afterwards."""
    caller = env.api_login(alice)
    other = env.api_login(alice)
    failed(endsession(env, caller, handle=f"{family_of(other)}:AAAAAAAA"), "INVALID_PARAMETER")
    assert handle(other) in [item["handle"] for item in listsessions(env, caller)]
    assert ok(env.call(env.api(), "endallsessions", sessionName=caller)) == {"ended": 2}
    assert not env.alive(other)


# --- endallsessions ----------------------------------------------------------------------------


def test_endallsessions_ends_everything_of_the_user(env, alice, bob):
    caller = env.api_login(alice)
    others = [env.api_login(alice) for _ in range(2)]
    browser = env.browser()
    browser.login("alice")
    extended = browser.extended_session()
    bobs = env.api_login(bob)
    body = env.call(env.api(), "endallsessions", sessionName=caller)
    assert ok(body) == {"ended": 4}  # three API logins and one web login (with its extension)
    assert not env.alive(caller)
    assert not any(env.alive(name) for name in others)
    assert not browser.logged_in() and not env.alive(extended)
    assert env.alive(bobs)
    assert env.families() == {family_of(bobs)}
    assert env.redis.zrange(env.gateway.keys.user_families(alice.id), 0, -1) == []


def test_endallsessions_from_an_extended_session(env, alice):
    browser = env.browser()
    browser.login("alice")
    extended = browser.extended_session()
    standalone = env.api_login(alice)
    assert ok(env.call(env.api(), "endallsessions", sessionName=extended)) == {"ended": 2}
    assert not browser.logged_in() and not env.alive(standalone) and not env.alive(extended)


def test_endallsessions_needs_a_session(env, alice):
    target = env.api_login(alice)
    body = env.call(env.api(), "endallsessions")
    failed(body, "AUTHENTICATION_REQUIRED", "Authentication required")
    assert env.alive(target)

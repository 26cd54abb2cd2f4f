"""The operators' commands: ``flask sessions list / revoke / revoke-user`` and ``users disable``."""

from __future__ import annotations

import json
import re

import pytest

from tests.unit.web.support import (
    API_AGENT,
    BROWSER_AGENT,
    PASSWORD,
    Env,
    failed,
    family_of,
    md5_proof,
    member_of,
    ok,
)


@pytest.fixture
def run(env: Env):
    runner = env.app.test_cli_runner()

    def invoke(*args: str):
        return runner.invoke(args=list(args))

    return invoke


def handle(session_name: str) -> str:
    return f"{family_of(session_name)}:{member_of(session_name)[:8]}"


@pytest.fixture
def sessions(env: Env, alice, bob):
    """alice: a web login with one extended API session, and a standalone API login; bob: one."""
    browser = env.browser(user_agent=BROWSER_AGENT, address="198.51.100.8")
    browser.login("alice")
    extended = browser.extended_session()
    standalone = env.api_login(alice, env.api(user_agent=API_AGENT, address="203.0.113.5"))
    bobs = env.api_login(bob)
    return {
        "browser": browser,
        "web": f"{browser.family_id}:{browser.member[:8]}",
        "extended": extended,
        "standalone": standalone,
        "bob": bobs,
    }


# --- sessions list -----------------------------------------------------------------------------


def test_list_one_user_as_text(env, run, sessions):
    result = run("sessions", "list", "alice")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 3, result.output
    by_handle = {line.split()[0]: line for line in lines}
    assert set(by_handle) == {
        sessions["web"],
        handle(sessions["extended"]),
        handle(sessions["standalone"]),
    }
    web = by_handle[sessions["web"]]
    assert re.search(r"\balice\b", web) and re.search(r"\bweb\b", web) and "linked" in web
    assert "198.51.100.8" in web and BROWSER_AGENT in web
    assert re.search(r"created \d{4}-\d\d-\d\d \d\d:\d\d:\d\d", web)
    assert re.search(r"last used \d{4}-\d\d-\d\d \d\d:\d\d:\d\d", web)
    alone = by_handle[handle(sessions["standalone"])]
    assert re.search(r"\bapi\b", alone) and "linked" not in alone
    assert "203.0.113.5" in alone and API_AGENT in alone
    assert "bob" not in result.output


def test_list_everyone_as_json(env, run, sessions):
    result = run("sessions", "list", "--json")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.output.strip().splitlines()]
    assert {(r["username"], r["handle"]) for r in records} == {
        ("alice", sessions["web"]),
        ("alice", handle(sessions["extended"])),
        ("alice", handle(sessions["standalone"])),
        ("bob", handle(sessions["bob"])),
    }
    for record in records:
        assert set(record) >= {
            "username", "handle", "kind", "linked", "created", "lastUsed", "address", "userAgent"
        }
    web = next(r for r in records if r["handle"] == sessions["web"])
    assert web["kind"] == "web" and web["linked"] is True
    assert web["address"] == "198.51.100.8" and web["userAgent"] == BROWSER_AGENT


def test_list_shows_no_secret(env, run, sessions):
    output = run("sessions", "list").output + run("sessions", "list", "--json").output
    for secret in (sessions["extended"], sessions["standalone"], sessions["bob"]):
        assert secret not in output and secret.split(".")[1] not in output
    assert sessions["browser"].cookie not in output


def test_list_with_no_sessions_prints_nothing(env, run, alice):
    result = run("sessions", "list", "alice")
    assert result.exit_code == 0 and result.output == ""


def test_list_of_an_unknown_user_fails(env, run, alice):
    result = run("sessions", "list", "nobody")
    assert result.exit_code != 0
    assert "no such user 'nobody'" in result.output


# --- sessions revoke ---------------------------------------------------------------------------


def test_revoke_a_web_handle_ends_its_family(env, run, sessions):
    result = run("sessions", "revoke", sessions["web"])
    assert result.exit_code == 0, result.output
    assert sessions["web"] in result.output and "ended" in result.output
    assert not sessions["browser"].logged_in()
    assert not env.alive(sessions["extended"])
    assert env.alive(sessions["standalone"]) and env.alive(sessions["bob"])


def test_revoke_a_linked_api_handle_ends_the_web_login(env, run, sessions):
    result = run("sessions", "revoke", handle(sessions["extended"]))
    assert result.exit_code == 0, result.output
    assert not sessions["browser"].logged_in()
    assert not env.alive(sessions["extended"])
    assert env.alive(sessions["standalone"])


def test_revoke_a_standalone_handle(env, run, sessions):
    result = run("sessions", "revoke", handle(sessions["bob"]))
    assert result.exit_code == 0, result.output
    assert not env.alive(sessions["bob"])
    assert env.alive(sessions["standalone"]) and sessions["browser"].logged_in()


@pytest.mark.parametrize(
    "bad",
    ["nonsense", "AAAAAAAAAAAAAAAAAAAAAA:AAAAAAAA", "standalone-family:wrong-member", "ended"],
)
def test_revoke_an_unknown_handle_fails_and_changes_nothing(env, run, sessions, bad):
    if bad == "standalone-family:wrong-member":
        bad = f"{family_of(sessions['standalone'])}:AAAAAAAA"
    elif bad == "ended":
        bad = handle(sessions["bob"])
        assert run("sessions", "revoke", bad).exit_code == 0
    before = env.snapshot(ignore_last_use=True)
    result = run("sessions", "revoke", bad)
    assert result.exit_code != 0
    assert f"no live session has handle {bad!r}" in result.output
    assert env.snapshot(ignore_last_use=True) == before
    assert env.alive(sessions["standalone"]) and sessions["browser"].logged_in()


# --- sessions revoke-user / users disable --------------------------------------------------------


def test_revoke_user_ends_every_session_of_that_user(env, run, sessions):
    result = run("sessions", "revoke-user", "alice")
    assert result.exit_code == 0, result.output
    assert "2 login(s) of alice ended" in result.output
    assert not sessions["browser"].logged_in()
    assert not env.alive(sessions["extended"]) and not env.alive(sessions["standalone"])
    assert env.alive(sessions["bob"])
    assert run("sessions", "list", "alice").output == ""
    # The user can log in again.
    assert env.alive(env.api_login(env.gateway.users.get("alice")))


def test_revoke_user_of_an_unknown_user_fails(env, run, sessions):
    before = env.snapshot(ignore_last_use=True)
    result = run("sessions", "revoke-user", "nobody")
    assert result.exit_code != 0 and "no such user 'nobody'" in result.output
    assert env.snapshot(ignore_last_use=True) == before


def test_users_disable_ends_the_users_sessions(env, run, sessions):
    result = run("users", "disable", "alice")
    assert result.exit_code == 0, result.output
    assert "user alice disabled, 2 session(s) ended" in result.output
    assert not sessions["browser"].logged_in()
    assert not env.alive(sessions["extended"]) and not env.alive(sessions["standalone"])
    assert env.alive(sessions["bob"])
    # And no new login, neither on the web nor by the API.
    browser = env.browser()
    response = browser.post("/login", username="alice", password=PASSWORD)
    assert response.status_code == 401
    alice = env.gateway.users.get("alice")
    assert alice is not None and not alice.active
    client = env.api()
    token = ok(env.call(client, "getchallenge", "GET", username="alice"))["token"]
    body = env.call(client, "login", username="alice", accessKey=md5_proof(token, alice.access_key))
    failed(body, "AUTHENTICATION_REQUIRED", "Given user is inactive")

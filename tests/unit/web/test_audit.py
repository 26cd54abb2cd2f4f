"""The audit trail: one entry per login, failed login, extension, logout and ended session, with
who, which handle, from where, and why; never a secret; read back with ``flask audit tail``."""

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
    make_env,
    md5_proof,
    member_of,
    ok,
)
from webservice.store.audit import AuditEvent, AuditTrail
from webservice.store.tokens import handle_of

FIELDS = {"event", "via", "user", "handle", "address", "agent", "reason", "detail"}
HANDLE = re.compile(r"[A-Za-z0-9_-]{22}:[A-Za-z0-9_-]{8}")


def entries(env: Env) -> list[dict[str, str]]:
    """Every entry of the trail, oldest first, as stored."""
    stream = env.redis.xrange(env.gateway.keys.audit_log())
    for _id, fields in stream:
        assert set(fields) == FIELDS, fields
    return [fields for _id, fields in stream]


def last(env: Env) -> dict[str, str]:
    return entries(env)[-1]


def api_handle(session_name: str) -> str:
    return handle_of(family_of(session_name), member_of(session_name))


@pytest.fixture
def env() -> Env:
    return make_env()


@pytest.fixture
def alice(env: Env):
    return env.add_user("alice")


# --- logins --------------------------------------------------------------------------------------


def test_api_login(env, alice):
    session_name = env.api_login(alice, env.api(address="198.51.100.7"))
    [entry] = entries(env)
    assert entry == {
        "event": "login",
        "via": "api",
        "user": "alice",
        "handle": api_handle(session_name),
        "address": "198.51.100.7",
        "agent": API_AGENT,
        "reason": "",
        "detail": "",
    }


def test_the_login_handle_is_the_one_listsessions_shows(env, alice):
    client = env.api()
    session_name = env.api_login(alice, client)
    listed = ok(env.call(client, "listsessions", "GET", sessionName=session_name))
    assert [view["handle"] for view in listed] == [last(env)["handle"]]


def test_web_login(env, alice):
    browser = env.browser(address="203.0.113.9")
    browser.login("alice")
    entry = last(env)
    assert entry["event"] == "login" and entry["via"] == "web" and entry["user"] == "alice"
    assert entry["handle"] == handle_of(browser.family_id, browser.member)
    assert (entry["address"], entry["agent"]) == ("203.0.113.9", BROWSER_AGENT)


def _failed_api_login(env, username, access_key="wrong", with_challenge=True):
    client = env.api()
    token = "0" * 32
    if with_challenge:
        token = ok(env.call(client, "getchallenge", "GET", username=username))["token"]
    return env.call(client, "login", username=username, accessKey=md5_proof(token, access_key))


@pytest.mark.parametrize(
    ("setup", "username", "with_challenge", "reason"),
    [
        (None, "alice", True, "wrong_key"),
        (None, "alice", False, "no_live_token"),
        ("inactive", "alice", True, "inactive"),
        ("no key", "alice", True, "no_access_key"),
        (None, "mallory", False, "unknown_user"),
        (None, "not a name!", False, "invalid_username"),
    ],
)
def test_failed_api_logins_say_why(env, alice, setup, username, with_challenge, reason):
    key = alice.access_key
    if setup == "inactive":
        env.gateway.users.set_active("alice", False)
    if setup == "no key":
        env.redis.hset(env.gateway.keys.user("alice"), "key", "")
    access_key = key if setup else "wrong"
    assert not _failed_api_login(env, username, access_key, with_challenge)["success"]
    entry = last(env)
    assert (entry["event"], entry["via"], entry["reason"]) == ("login_failed", "api", reason)
    assert entry["user"] == ("" if username == "not a name!" else username)
    assert entry["handle"] == ""
    assert entry["agent"] == API_AGENT and entry["address"] == "127.0.0.1"


@pytest.mark.parametrize(
    ("username", "password", "reason"),
    [
        ("alice", "wrong", "wrong_password"),
        ("nobody", PASSWORD, "unknown_user"),
        ("inactive", PASSWORD, "inactive"),
        ("nopassword", PASSWORD, "no_password"),
        ("", PASSWORD, "invalid_username"),
    ],
)
def test_failed_web_logins_say_why(env, alice, username, password, reason):
    env.add_user("inactive", active=False)
    env.add_user("nopassword", password=None)
    response = env.browser().post("/login", username=username, password=password)
    assert response.status_code == 401
    entry = last(env)
    assert (entry["event"], entry["via"], entry["reason"]) == ("login_failed", "web", reason)
    assert entry["user"] == username


def test_a_replayed_token_leaves_one_login_and_one_failure(env, alice):
    """The right proof for a token a login just used: the entry announced with the attempt is
    taken back, and the failure is written instead."""
    client = env.api()
    token = ok(env.call(client, "getchallenge", "GET", username="alice"))["token"]
    proof = md5_proof(token, alice.access_key)
    first = ok(env.call(client, "login", username="alice", accessKey=proof))["sessionName"]
    failed(env.call(client, "login", username="alice", accessKey=proof), "INVALID_AUTH_TOKEN")
    assert [(e["event"], e["reason"], e["handle"]) for e in entries(env)] == [
        ("login", "", api_handle(first)),
        ("login_failed", "token_used", ""),
    ]


def test_a_login_after_redis_forgot_the_scripts_is_written_once(env, alice):
    """The round trip sends a pipeline again after NOSCRIPT; the entry must not be doubled."""
    env.api_login(alice)
    env.redis.script_flush()
    env.api_login(alice)
    env.redis.script_flush()
    failed(_failed_api_login(env, "alice"), "INVALID_USER_CREDENTIALS")
    assert [e["event"] for e in entries(env)] == ["login", "login", "login_failed"]


# --- extensions -----------------------------------------------------------------------------------


def test_extendsession(env, alice):
    browser = env.browser()
    browser.login("alice")
    session_name = browser.extended_session()
    entry = last(env)
    assert (entry["event"], entry["via"], entry["user"]) == ("extend", "api", "alice")
    assert entry["handle"] == api_handle(session_name)
    assert family_of(session_name) == browser.family_id
    assert entry["agent"] == BROWSER_AGENT


def test_an_extension_of_an_ended_login_leaves_no_entry(env, alice):
    browser = env.browser()
    browser.login("alice")
    env.redis.delete(env.family_key(browser.family_id))
    before = entries(env)
    failed(browser.extend(), "AUTHENTICATION_FAILURE")
    assert entries(env) == before


# --- logouts and ended sessions ---------------------------------------------------------------------


def test_api_logout(env, alice):
    client = env.api(address="198.51.100.8")
    session_name = env.api_login(alice, client)
    ok(env.call(client, "logout", sessionName=session_name))
    entry = last(env)
    assert entry == {
        "event": "logout",
        "via": "api",
        "user": "alice",
        "handle": api_handle(session_name),
        "address": "198.51.100.8",
        "agent": API_AGENT,
        "reason": "",
        "detail": "",
    }


def test_logout_of_another_session_names_both(env, alice):
    client = env.api()
    mine = env.api_login(alice, client)
    other = env.api_login(alice)
    response = client.post(
        "/webservice.php",
        data={"operation": "logout", "sessionName": other},
        headers={"corebos-authorization": mine},
    )
    assert response.get_json()["success"] is True
    entry = last(env)
    assert (entry["event"], entry["handle"]) == ("logout", api_handle(other))
    assert entry["detail"] == f"by {api_handle(mine)}"
    assert env.alive(mine) and not env.alive(other)


def test_web_logout(env, alice):
    browser = env.browser()
    browser.login("alice")
    handle = handle_of(browser.family_id, browser.member)
    browser.post("/logout")
    entry = last(env)
    assert (entry["event"], entry["via"], entry["user"], entry["handle"]) == (
        "logout",
        "web",
        "alice",
        handle,
    )


def test_web_logout_without_a_login_writes_nothing(env, alice):
    browser = env.browser()
    browser.post("/logout")
    assert entries(env) == []


def test_a_new_web_login_ends_the_previous_one(env, alice):
    env.add_user("bob")
    browser = env.browser()
    browser.login("alice")
    first = handle_of(browser.family_id, browser.member)
    browser.login("bob")
    assert [(e["event"], e["user"], e["reason"]) for e in entries(env)] == [
        ("login", "alice", ""),
        ("end", "alice", "web_relogin"),
        ("login", "bob", ""),
    ]
    assert entries(env)[1]["handle"] == first


def test_endsession_and_endallsessions(env, alice):
    client = env.api()
    mine = env.api_login(alice, client)
    other = env.api_login(alice)
    third = env.api_login(alice)
    ok(env.call(client, "endsession", sessionName=mine, handle=api_handle(other)))
    entry = last(env)
    assert (entry["event"], entry["reason"], entry["handle"], entry["detail"]) == (
        "end",
        "endsession",
        api_handle(other),
        f"by {api_handle(mine)}",
    )
    assert entry["user"] == "alice"
    ok(env.call(client, "endallsessions", sessionName=mine))
    entry = last(env)
    assert (entry["event"], entry["reason"], entry["handle"]) == (
        "end",
        "endallsessions",
        api_handle(mine),
    )
    assert not env.alive(third)


def test_a_refused_endsession_leaves_no_entry(env, alice):
    client = env.api()
    mine = env.api_login(alice, client)
    before = entries(env)
    body = env.call(client, "endsession", sessionName=mine, handle="A" * 22 + ":" + "b" * 8)
    failed(body, "INVALID_PARAMETER")
    assert entries(env) == before


@pytest.fixture
def run(env: Env):
    runner = env.app.test_cli_runner()
    return lambda *args: runner.invoke(args=list(args))


def test_operator_endings(env, alice, run):
    first = env.api_login(alice)
    env.api_login(alice)
    assert run("sessions", "revoke", api_handle(first)).exit_code == 0
    entry = last(env)
    assert (entry["event"], entry["via"], entry["reason"], entry["user"], entry["handle"]) == (
        "end",
        "cli",
        "revoke",
        "alice",
        api_handle(first),
    )
    assert entry["agent"].startswith("flask cli (") and entry["address"] == ""
    assert run("sessions", "revoke-user", "alice").exit_code == 0
    assert (last(env)["reason"], last(env)["user"], last(env)["handle"]) == ("revoke_user", "alice", "")
    env.api_login(alice)
    assert run("users", "disable", "alice").exit_code == 0
    assert (last(env)["reason"], last(env)["user"]) == ("user_disabled", "alice")


def test_a_failed_revoke_leaves_no_entry(env, alice, run):
    assert run("sessions", "revoke", "A" * 22 + ":" + "b" * 8).exit_code == 1
    assert entries(env) == []


# --- no secrets -----------------------------------------------------------------------------------


def test_no_secret_in_any_entry(env, alice):
    """Session ids and their secrets, access keys, passwords, tokens and proofs: none of them in
    any field of any entry, whole or in part."""
    secrets_seen: list[str] = [alice.access_key, PASSWORD]
    client = env.api()
    for _ in range(3):
        token = ok(env.call(client, "getchallenge", "GET", username="alice"))["token"]
        proof = md5_proof(token, alice.access_key)
        answer = ok(env.call(client, "login", username="alice", accessKey=proof))
        # The family id before the dot is public (it starts the handle); the rest is the secret.
        secrets_seen += [token, proof, answer["sessionName"].split(".")[1]]
        assert answer["sessionName"] not in json.dumps(entries(env))
        ok(env.call(client, "logout", sessionName=answer["sessionName"]))
    token = ok(env.call(client, "getchallenge", "GET", username="alice"))["token"]
    wrong = md5_proof(token, "guess")
    secrets_seen += [token, wrong]
    failed(env.call(client, "login", username="alice", accessKey=wrong), "INVALID_USER_CREDENTIALS")
    browser = env.browser()
    browser.post("/login", username="alice", password="a wrong password")
    secrets_seen.append("a wrong password")
    browser.login("alice")
    secrets_seen.append(browser.cookie)
    extended = browser.extended_session()
    secrets_seen.append(extended.split(".")[1])
    browser.post("/logout")
    assert len(entries(env)) >= 10
    text = json.dumps(entries(env))
    for secret in secrets_seen:
        assert secret and secret not in text
        # No long piece of it either.
        for start in range(0, len(secret) - 12, 4):
            assert secret[start : start + 12] not in text, secret


def test_a_password_typed_as_the_username_is_not_kept(env, alice):
    browser = env.browser()
    browser.post("/login", username="my secret pass!", password="")
    assert last(env)["user"] == ""
    assert "my secret pass" not in json.dumps(entries(env))


def test_long_user_agents_are_cut(env, alice):
    env.api_login(alice, env.api(user_agent="x" * 5000))
    assert len(last(env)["agent"]) == 200


# --- the capped stream and `flask audit tail` ------------------------------------------------------


def test_entries_are_written_with_an_approximate_cap(env, alice):
    trail = AuditTrail(env.redis, env.gateway.keys, max_entries=7)
    calls = []
    original = env.redis.xadd

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return original(*args, **kwargs)

    env.redis.xadd = spy  # type: ignore[method-assign]
    trail.record(AuditEvent("login", "api", user="alice"))
    assert calls == [{"maxlen": 7, "approximate": True}]
    assert env.gateway.settings["AUDIT_MAX_ENTRIES"] == 100000


def _fill(env: Env) -> None:
    env.add_user("bob")
    trail = env.gateway.audit
    for i in range(30):
        trail.record(AuditEvent("login", "api", user="alice" if i % 3 else "bob", address=f"10.0.0.{i}"))


def test_tail_prints_the_last_entries_oldest_first(env, alice, run):
    _fill(env)
    result = run("audit", "tail", "-n", "5")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 5
    assert [line.split()[5] for line in lines] == [f"10.0.0.{i}" for i in range(25, 30)]
    assert all(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z  login ", line) for line in lines)


def test_tail_default_count_and_json(env, alice, run):
    _fill(env)
    result = run("audit", "tail", "--json")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.output.splitlines()]
    assert len(records) == 20
    assert set(records[0]) == FIELDS | {"id", "time"}
    assert [r["address"] for r in records] == [f"10.0.0.{i}" for i in range(10, 30)]
    ids = [r["id"] for r in records]
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))


def test_tail_of_one_user(env, alice, run):
    _fill(env)
    result = run("audit", "tail", "--user", "bob", "-n", "100", "--json")
    records = [json.loads(line) for line in result.output.splitlines()]
    assert [r["address"] for r in records] == [f"10.0.0.{i}" for i in range(0, 30, 3)]
    assert run("audit", "tail", "--user", "nobody").output == ""


def test_tail_looks_back_past_one_batch_for_a_user(env, alice, run):
    trail = env.gateway.audit
    trail.record(AuditEvent("login", "api", user="bob"))
    for _ in range(1200):
        trail.record(AuditEvent("login", "api", user="alice"))
    records = run("audit", "tail", "--user", "bob", "--json").output.splitlines()
    assert len(records) == 1 and json.loads(records[0])["user"] == "bob"


def test_tail_of_an_empty_trail(env, run):
    result = run("audit", "tail")
    assert result.exit_code == 0 and result.output == ""


def test_tail_shows_handles_and_reasons(env, alice, run):
    session_name = env.api_login(alice)
    _failed_api_login(env, "alice")
    lines = run("audit", "tail").output.splitlines()
    assert api_handle(session_name) in lines[0]
    assert "wrong_key" in lines[1]

"""Brute-force limits: failed logins per username and per client address (API and web form
together), and the getchallenge rate per address."""

from __future__ import annotations

import importlib
import re
import time

import pytest

from tests.unit.web.support import PASSWORD, Env, failed, make_env, md5_proof, ok
from webservice.api.errors import ErrorCode

#: The module (the package's ``login`` attribute is the registered operation).
login_module = importlib.import_module("webservice.auth.login")
LIMITED = re.compile(r"Too many failed logins; retry in (\d+) seconds")


@pytest.fixture
def env() -> Env:
    return make_env()


@pytest.fixture
def alice(env: Env):
    return env.add_user("alice")


def api_login(env: Env, user, access_key: str | None = None, address: str = "127.0.0.1") -> dict:
    client = env.api(address=address)
    token = ok(env.call(client, "getchallenge", "GET", username=user.username))["token"]
    key = user.access_key if access_key is None else access_key
    return env.call(client, "login", username=user.username, accessKey=md5_proof(token, key))


def wait_of(body: dict) -> int:
    message = failed(body, ErrorCode.TOO_MANY_REQUESTS)
    match = LIMITED.fullmatch(message)
    assert match, message
    return int(match.group(1))


def audit(env: Env) -> list[dict[str, str]]:
    return [fields for _id, fields in env.redis.xrange(env.gateway.keys.audit_log())]


# --- per username --------------------------------------------------------------------------------


def test_five_failures_then_even_the_right_key_waits(env, alice):
    for _ in range(5):
        failed(api_login(env, alice, "wrong"), "INVALID_USER_CREDENTIALS")
    wait = wait_of(api_login(env, alice))
    assert 890 <= wait <= 900
    # From any address: the username is limited.
    assert wait_of(api_login(env, alice, address="192.0.2.50")) <= 900


def test_the_limit_is_checked_before_the_proof(env, alice, monkeypatch):
    for _ in range(5):
        api_login(env, alice, "wrong")
    checked = []
    original = login_module.find_proven_token
    monkeypatch.setattr(
        login_module, "find_proven_token", lambda *a, **k: checked.append(a) or original(*a, **k)
    )
    wait_of(api_login(env, alice))
    assert checked == []
    ok(api_login(env, env.add_user("bob"), address="192.0.2.80"))
    assert len(checked) == 1  # the spy does see proofs that are checked


def test_a_success_within_the_limit_resets_the_count(env, alice):
    for _ in range(4):
        failed(api_login(env, alice, "wrong"), "INVALID_USER_CREDENTIALS")
    ok(api_login(env, alice))
    assert env.redis.get(env.gateway.keys.login_failures_of_user("alice")) is None
    for _ in range(4):
        failed(api_login(env, alice, "wrong", address="192.0.2.60"), "INVALID_USER_CREDENTIALS")
    ok(api_login(env, alice, address="192.0.2.60"))


def test_the_limit_ends_with_its_window(alice_short_window):
    env, alice = alice_short_window
    for _ in range(5):
        api_login(env, alice, "wrong")
    assert wait_of(api_login(env, alice)) == 1
    time.sleep(1.1)
    ok(api_login(env, alice))


@pytest.fixture
def alice_short_window():
    env = make_env({"LOGIN_FAILURE_WINDOW": 1})
    return env, env.add_user("alice")


def test_refusals_while_limited_are_not_counted_nor_written(env, alice):
    for _ in range(5):
        api_login(env, alice, "wrong")
    key = env.gateway.keys.login_failures_of_user("alice")
    assert env.redis.get(key) == "5"
    written = audit(env)
    assert [e["detail"] for e in written] == ["", "", "", "", "limit reached"]
    for _ in range(10):
        wait_of(api_login(env, alice, "wrong"))
    assert env.redis.get(key) == "5"
    assert audit(env) == written


def test_every_counter_expires(env, alice):
    api_login(env, alice, "wrong")
    keys = env.gateway.keys
    for key in (keys.login_failures_of_user("alice"), keys.login_failures_of_address("127.0.0.1")):
        assert 899_000 < env.redis.pttl(key) <= 900_000


def test_a_counter_without_expiry_cannot_lock_anyone_out(env, alice):
    """Cannot happen through the gateway; if it ever did, the next failure repairs it."""
    key = env.gateway.keys.login_failures_of_user("alice")
    env.redis.set(key, 50)
    failed(api_login(env, alice, "wrong"), "INVALID_USER_CREDENTIALS")
    assert 0 < env.redis.pttl(key) <= 900_000


def test_unknown_names_are_counted_like_users(env):
    env2 = make_env({"HIDE_UNKNOWN_USERS": True})
    client = env2.api()
    for i in range(5):
        token = ok(env2.call(client, "getchallenge", "GET", username="mallory"))["token"]
        body = env2.call(client, "login", username="mallory", accessKey=md5_proof(token, "x"))
        failed(body, "INVALID_USER_CREDENTIALS")
    token = ok(env2.call(client, "getchallenge", "GET", username="mallory"))["token"]
    wait_of(env2.call(client, "login", username="mallory", accessKey=md5_proof(token, "x")))


# --- per address ---------------------------------------------------------------------------------


def test_failures_for_many_names_from_one_address(env, alice):
    bob = env.add_user("bob")
    for name in ["u1", "u2", "u3", "u4", "u5"]:
        failed(
            env.call(env.api(address="198.51.100.1"), "login", username=name, accessKey="0" * 32),
            "AUTHENTICATION_REQUIRED",
        )
    wait_of(api_login(env, bob, address="198.51.100.1"))
    ok(api_login(env, bob, address="198.51.100.2"))


def test_a_success_does_not_clear_the_address(env, alice):
    for _ in range(4):
        api_login(env, alice, "wrong", address="198.51.100.3")
    ok(api_login(env, alice, address="198.51.100.3"))
    bob = env.add_user("bob")
    failed(api_login(env, bob, "wrong", address="198.51.100.3"), "INVALID_USER_CREDENTIALS")
    wait_of(api_login(env, bob, address="198.51.100.3"))


def test_limits_can_be_turned_off():
    env = make_env({"LOGIN_FAILURE_LIMIT": 0, "LOGIN_ADDRESS_FAILURE_LIMIT": 0})
    alice = env.add_user("alice")
    for _ in range(12):
        failed(api_login(env, alice, "wrong"), "INVALID_USER_CREDENTIALS")
    ok(api_login(env, alice))
    assert not [key for key in env.redis.scan_iter() if "login-failures" in key]


def test_limits_follow_the_settings():
    env = make_env({"LOGIN_FAILURE_LIMIT": 2, "LOGIN_FAILURE_WINDOW": 60})
    alice = env.add_user("alice")
    for _ in range(2):
        api_login(env, alice, "wrong")
    assert 55 <= wait_of(api_login(env, alice)) <= 60


# --- the web form --------------------------------------------------------------------------------


def test_web_failures_lead_to_a_429_form_with_the_wait(env, alice):
    browser = env.browser()
    for _ in range(5):
        assert browser.post("/login", username="alice", password="wrong").status_code == 401
    response = browser.post("/login", username="alice", password=PASSWORD)
    assert response.status_code == 429
    page = response.get_data(as_text=True)
    match = re.search(r"Too many failed logins\. Try again in (\d+) seconds\.", page)
    assert match and 890 <= int(match.group(1)) <= 900
    assert response.headers["Retry-After"] == match.group(1)
    assert '<form method="post" action="/login">' in page and 'value="alice"' in page
    assert not browser.logged_in()


def test_a_limited_web_login_does_no_password_work(env, alice, monkeypatch):
    browser = env.browser()
    for _ in range(5):
        browser.post("/login", username="alice", password="wrong")
    users = env.gateway.users
    calls = []
    monkeypatch.setattr(users, "password_failure", lambda *a: calls.append(a) or "wrong_password")
    assert browser.post("/login", username="alice", password=PASSWORD).status_code == 429
    assert calls == []
    env.browser(address="192.0.2.81").post("/login", username="bob", password=PASSWORD)
    assert len(calls) == 1


def test_a_web_success_resets_the_count(env, alice):
    browser = env.browser()
    for _ in range(4):
        browser.post("/login", username="alice", password="wrong")
    browser.login("alice")
    browser.post("/logout")
    other = env.browser(address="192.0.2.70")
    for _ in range(4):
        assert other.post("/login", username="alice", password="wrong").status_code == 401
    other.login("alice")


def test_web_and_api_failures_count_together(env, alice):
    browser = env.browser()
    for _ in range(3):
        browser.post("/login", username="alice", password="wrong")
    for _ in range(2):
        failed(api_login(env, alice, "wrong"), "INVALID_USER_CREDENTIALS")
    assert browser.post("/login", username="alice", password=PASSWORD).status_code == 429
    wait_of(api_login(env, alice))


# --- getchallenge --------------------------------------------------------------------------------


def test_getchallenge_floods_are_limited_per_address():
    env = make_env({"CHALLENGE_RATE_LIMIT": 2, "CHALLENGE_RATE_BURST": 3})
    env.add_user("alice")
    client = env.api(address="198.51.100.9")
    for _ in range(3):
        ok(env.call(client, "getchallenge", "GET", username="alice"))
    message = failed(env.call(client, "getchallenge", "GET", username="alice"), "TOO_MANY_REQUESTS")
    assert message == "Too many challenge requests; retry in 1 seconds"
    # Another address has its own bucket.
    ok(env.call(env.api(address="198.51.100.10"), "getchallenge", "GET", username="alice"))
    time.sleep(0.55)
    ok(env.call(client, "getchallenge", "GET", username="alice"))
    failed(env.call(client, "getchallenge", "GET", username="alice"), "TOO_MANY_REQUESTS")


@pytest.mark.parametrize("in_one_step", [True, False], ids=["one step", "own round trip"])
def test_a_refused_getchallenge_writes_nothing(in_one_step):
    """Not the token, its pending challenge, its address's entry, nor the bucket: whether the
    bucket is taken from in the getchallenge's one script (a single Redis) or in a round trip
    of its own first (as on a Redis Cluster)."""
    env = make_env({"CHALLENGE_RATE_LIMIT": 1, "CHALLENGE_RATE_BURST": 1})
    env.gateway.challenges.in_one_step = in_one_step
    env.add_user("alice")
    client = env.api()
    ok(env.call(client, "getchallenge", "GET", username="alice"))
    before = env.snapshot(bookkeeping=True)
    assert any(b":rate:" in key for key in before)
    for name in ("alice", "nobody", "not a name!"):
        failed(env.call(client, "getchallenge", "GET", username=name), "TOO_MANY_REQUESTS")
    assert env.snapshot(bookkeeping=True) == before


def test_the_default_getchallenge_limit_allows_bursts_of_dozens(env, alice):
    client = env.api()
    for _ in range(60):
        ok(env.call(client, "getchallenge", "GET", username="alice"))


def test_getchallenge_limit_can_be_turned_off():
    env = make_env({"CHALLENGE_RATE_LIMIT": 0})
    env.add_user("alice")
    client = env.api()
    for _ in range(150):
        ok(env.call(client, "getchallenge", "GET", username="alice"))
    assert not [key for key in env.redis.scan_iter() if ":rate:" in key]


def test_the_bucket_expires_when_idle(env, alice):
    ok(env.call(env.api(), "getchallenge", "GET", username="alice"))
    key = env.gateway.keys.challenge_rate("127.0.0.1")
    assert 0 < env.redis.pttl(key) <= 3000

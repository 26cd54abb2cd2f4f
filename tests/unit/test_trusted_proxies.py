"""TRUSTED_PROXIES: behind n proxies the client's address, scheme and host come from the
X-Forwarded-* entries those proxies appended; with 0 (the default) the headers are ignored."""

from __future__ import annotations

import pytest

from tests.conftest import TEST_SETTINGS
from tests.unit.web.support import Env, failed, make_env, md5_proof, ok
from webservice.api.errors import ErrorCode
from webservice.serving.proxies import trusted_proxies
from webservice.standalone import create_app

CLIENT = "203.0.113.50"
PROXY = "10.0.0.2"
#: What a TLS-terminating load balancer in front of the gateway sends along.
PUBLIC = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "gw.example.com"}
PUBLIC_ORIGIN = "https://gw.example.com"


def env_with(hops: int, **settings) -> Env:
    return make_env({"TRUSTED_PROXIES": hops, **settings})


def api_login(env: Env, user, headers: dict[str, str], key: str | None = None) -> dict:
    client = env.api()
    answer = client.get(
        "/webservice.php",
        query_string={"operation": "getchallenge", "username": user.username},
        headers=headers,
    )
    token = ok(answer.get_json())["token"]
    proof = md5_proof(token, user.access_key if key is None else key)
    return client.post(
        "/webservice.php",
        data={"operation": "login", "username": user.username, "accessKey": proof},
        headers=headers,
    ).get_json()


def listed_addresses(env: Env, session_name: str) -> list[str]:
    views = ok(env.call(env.api(), "listsessions", "GET", sessionName=session_name))
    return [view["address"] for view in views]


def audit_addresses(env: Env) -> list[str]:
    return [fields["address"] for _id, fields in env.redis.xrange(env.gateway.keys.audit_log())]


# --- the client's address ---------------------------------------------------------------------


def test_by_default_forwarded_headers_are_ignored():
    env = env_with(0)
    alice = env.add_user("alice")
    session_name = ok(api_login(env, alice, {"X-Forwarded-For": CLIENT}))["sessionName"]
    assert listed_addresses(env, session_name) == ["127.0.0.1"]
    assert audit_addresses(env) == ["127.0.0.1"]


def test_the_default_is_zero():
    assert make_env().app.config["TRUSTED_PROXIES"] == 0


def test_behind_one_proxy_the_client_address_is_the_forwarded_one():
    env = env_with(1)
    alice = env.add_user("alice")
    session_name = ok(api_login(env, alice, {"X-Forwarded-For": CLIENT}))["sessionName"]
    assert listed_addresses(env, session_name) == [CLIENT]
    assert audit_addresses(env) == [CLIENT]


def test_entries_the_client_wrote_itself_are_not_believed():
    """The proxy appends the address it saw; what the client put before it is ignored."""
    env = env_with(1)
    alice = env.add_user("alice")
    forwarded = {"X-Forwarded-For": f"198.51.100.66, {CLIENT}"}
    session_name = ok(api_login(env, alice, forwarded))["sessionName"]
    assert listed_addresses(env, session_name) == [CLIENT]


def test_behind_two_proxies_the_second_entry_from_the_right_is_the_client():
    env = env_with(2)
    alice = env.add_user("alice")
    forwarded = {"X-Forwarded-For": f"198.51.100.66, {CLIENT}, {PROXY}"}
    session_name = ok(api_login(env, alice, forwarded))["sessionName"]
    assert listed_addresses(env, session_name) == [CLIENT]


def test_the_web_login_records_the_forwarded_address():
    env = env_with(1)
    env.add_user("alice")
    browser = env.browser()
    browser.client.environ_base["HTTP_X_FORWARDED_FOR"] = CLIENT
    browser.login("alice")
    assert audit_addresses(env) == [CLIENT]
    assert CLIENT in browser.get("/sessions").get_data(as_text=True)


# --- login limits per address --------------------------------------------------------------------

LIMITS = {"LOGIN_FAILURE_LIMIT": 0, "LOGIN_ADDRESS_FAILURE_LIMIT": 2}


def test_behind_a_proxy_each_client_address_has_its_own_failure_limit():
    env = env_with(1, **LIMITS)
    alice = env.add_user("alice")
    attacker = {"X-Forwarded-For": "198.51.100.66"}
    for _ in range(2):
        failed(api_login(env, alice, attacker, key="wrong"), ErrorCode.INVALID_USER_CREDENTIALS)
    failed(api_login(env, alice, attacker), ErrorCode.TOO_MANY_REQUESTS)
    # Another client behind the same proxy is not locked out with the attacker.
    assert ok(api_login(env, alice, {"X-Forwarded-For": CLIENT}))["sessionName"]


def test_without_trusted_proxies_everyone_behind_the_proxy_shares_one_limit():
    env = env_with(0, **LIMITS)
    alice = env.add_user("alice")
    for _ in range(2):
        failed(
            api_login(env, alice, {"X-Forwarded-For": "198.51.100.66"}, key="wrong"),
            ErrorCode.INVALID_USER_CREDENTIALS,
        )
    failed(api_login(env, alice, {"X-Forwarded-For": CLIENT}), ErrorCode.TOO_MANY_REQUESTS)


# --- scheme and host: the same-origin check of extendsession ------------------------------------


def extend_from_public_page(env: Env, browser) -> dict:
    headers = {**PUBLIC, "Origin": PUBLIC_ORIGIN}
    return browser.client.post(
        "/webservice.php", data={"operation": "extendsession"}, headers=headers
    ).get_json()


def test_behind_a_tls_proxy_the_public_origin_is_the_gateways_own():
    env = env_with(1)
    env.add_user("alice")
    browser = env.browser()
    browser.login("alice")
    assert ok(extend_from_public_page(env, browser))["sessionName"]


def test_without_trusted_proxies_the_public_origin_is_foreign():
    env = env_with(0)
    env.add_user("alice")
    browser = env.browser()
    browser.login("alice")
    failed(extend_from_public_page(env, browser), ErrorCode.ACCESS_DENIED)


def test_behind_a_tls_proxy_the_internal_origin_is_foreign():
    env = env_with(1)
    env.add_user("alice")
    browser = env.browser()
    browser.login("alice")
    answer = browser.client.post(
        "/webservice.php",
        data={"operation": "extendsession"},
        headers={**PUBLIC, "Origin": "http://localhost"},
    ).get_json()
    failed(answer, ErrorCode.ACCESS_DENIED)


def test_the_forwarded_port_counts_too():
    env = env_with(1)
    env.add_user("alice")
    browser = env.browser()
    browser.login("alice")
    headers = {**PUBLIC, "X-Forwarded-Port": "8443", "Origin": f"{PUBLIC_ORIGIN}:8443"}
    answer = browser.client.post(
        "/webservice.php", data={"operation": "extendsession"}, headers=headers
    ).get_json()
    assert ok(answer)["sessionName"]


# --- the setting ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value, hops", [(0, 0), (1, 1), (3, 3), ("2", 2), (" 1 ", 1)])
def test_valid_values(value, hops):
    assert trusted_proxies(value) == hops


@pytest.mark.parametrize("value", [-1, "two", "", None, True, 1.5, [1]])
def test_invalid_values_stop_the_app_at_start(value):
    with pytest.raises(ValueError, match="TRUSTED_PROXIES"):
        create_app({**TEST_SETTINGS, "TRUSTED_PROXIES": value})


def test_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("WSGATE_TRUSTED_PROXIES", "1")
    env = make_env()
    assert env.app.config["TRUSTED_PROXIES"] == 1
    alice = env.add_user("alice")
    session_name = ok(api_login(env, alice, {"X-Forwarded-For": CLIENT}))["sessionName"]
    assert listed_addresses(env, session_name) == [CLIENT]

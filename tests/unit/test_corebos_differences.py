"""Every deliberate difference from a real coreBOS, one test per row of the README's table
("Every difference from coreBOS"); the last test holds the table and these tests together."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.unit.conftest import gateway_of
from tests.unit.support import challenge, error, get, login, post, proof, result
from tests.unit.web.support import make_env
from webservice.plugin import OperationContext, operation

ROOT = Path(__file__).resolve().parents[2]
WRONG = ("INVALID_USER_CREDENTIALS", "Invalid username or password")


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def alice(app):
    return gateway_of(app).users.add("alice")


def test_d1_each_getchallenge_gives_a_new_single_use_token(app, alice):
    client = app.test_client()
    first, second = challenge(client, "alice")["token"], challenge(client, "alice")["token"]
    assert first != second
    for token in (second, first):  # both live at once, in any order
        assert result(post(client, operation="login", username="alice", accessKey=proof(token, alice.access_key)))
    replay = post(client, operation="login", username="alice", accessKey=proof(first, alice.access_key))
    error(replay, "INVALID_AUTH_TOKEN")


def test_d2_expire_time_is_always_a_number(app, alice):
    client = app.test_client()
    for _ in range(2):
        answer = challenge(client, "alice")
        assert isinstance(answer["expireTime"], int) and isinstance(answer["serverTime"], int)


def test_d3_an_unknown_name_is_answered_like_a_wrong_key(make_app):
    client = make_app({"HIDE_UNKNOWN_USERS": True}).test_client()
    token = challenge(client, "nobody")["token"]
    error(post(client, operation="login", username="nobody", accessKey=proof(token, "x")), *WRONG)


def test_d4_an_inactive_user_is_answered_like_a_wrong_key(make_app):
    app = make_app({"HIDE_UNKNOWN_USERS": True})
    user = gateway_of(app).users.add("ina")
    gateway_of(app).users.set_active("ina", False)
    client = app.test_client()
    token = challenge(client, "ina")["token"]
    error(post(client, operation="login", username="ina", accessKey=proof(token, user.access_key)), *WRONG)


def test_d5_a_missing_username_is_a_missing_parameter(app):
    error(get(app.test_client(), operation="getchallenge"), "MANDATORY_FIELDS_MISSING")


def test_d6_a_session_is_not_bound_to_its_user_agent(app, alice):
    client = app.test_client()
    session = login(client, "alice", alice.access_key)
    for agent in ("curl/8", "another/1", "Werkzeug/3"):
        assert result(get(client, {"User-Agent": agent}, operation="listtypes", sessionName=session))


def test_d7_requests_of_one_session_are_not_serialised(make_app):
    """A request of a session that is still being answered holds no lock on it."""
    entered, release = threading.Event(), threading.Event()

    @operation("hold", method="GET")
    def hold(context: OperationContext, params: dict) -> str:
        entered.set()
        release.wait(10)
        return "held"

    app = make_app(extra_operations=(hold,))
    user = gateway_of(app).users.add("alice")
    session = login(app.test_client(), "alice", user.access_key)
    held = threading.Thread(
        target=lambda: get(app.test_client(), operation="hold", sessionName=session)
    )
    held.start()
    try:
        assert entered.wait(10)
        assert result(get(app.test_client(), operation="listtypes", sessionName=session))
    finally:
        release.set()
        held.join(10)


def test_d8_extendsession_gives_a_new_id_never_the_web_sessions():
    env = make_env()
    env.add_user("alice")
    browser = env.browser()
    browser.login("alice")
    extended = browser.extended_session()
    assert browser.cookie not in extended
    assert extended != str(browser.web_login)


def test_d9_a_web_logout_ends_the_linked_api_sessions():
    env = make_env()
    env.add_user("alice")
    browser = env.browser()
    browser.login("alice")
    extended = browser.extended_session()
    browser.post("/logout")
    api = env.app.test_client()
    error(get(api, operation="listtypes", sessionName=extended), "AUTHENTICATION_REQUIRED")


def test_d10_a_logout_named_by_the_header_only_logs_out(app, alice):
    client = app.test_client()
    session = login(client, "alice", alice.access_key)
    answer = post(client, {"corebos-authorization": session}, operation="logout")
    assert result(answer) == {"message": "successfull"}
    error(get(client, operation="listtypes", sessionName=session), "AUTHENTICATION_REQUIRED")


def test_d11_options_gets_the_envelope_not_a_cors_answer(app):
    response = app.test_client().options("/webservice.php", headers={"Origin": "https://x.example"})
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response.headers
    assert response.get_json()["error"]["code"] == "METHOD_NOT_ALLOWED"


def test_d12_session_ids_are_a_family_and_a_256_bit_secret(app, alice):
    session = login(app.test_client(), "alice", alice.access_key)
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}", session)


def test_d13_idle_and_absolute_timeouts_are_enforced(make_app):
    app = make_app({"SESSION_IDLE_TIMEOUT": 60})
    user = gateway_of(app).users.add("alice")
    client = app.test_client()
    session = login(client, "alice", user.access_key)
    redis = gateway_of(app).redis
    redis.hset(gateway_of(app).keys.family(session.partition(".")[0]), "x", 1)
    error(get(client, operation="listtypes", sessionName=session), "AUTHENTICATION_REQUIRED")


def test_d14_failed_logins_are_limited(app, alice):
    client = app.test_client()
    for _ in range(5):
        token = challenge(client, "alice")["token"]
        post(client, operation="login", username="alice", accessKey=proof(token, "wrong"))
    token = challenge(client, "alice")["token"]
    answer = post(client, operation="login", username="alice", accessKey=proof(token, alice.access_key))
    error(answer, "TOO_MANY_REQUESTS")


def test_d15_the_gateways_own_codes(make_app):
    app = make_app({"MAX_PARAMETER_LENGTH": 10})
    error(post(app.test_client(), operation="listtypes", sessionName="x" * 11), "INVALID_PARAMETER")
    too_large = post(app.test_client(), **{f"p{i}": "1" for i in range(300)}, operation="listtypes")
    error(too_large, "REQUEST_TOO_LARGE")


def test_d16_the_underscore_header_is_dropped_unless_asked_for():
    probe = (
        "import json, runpy, sys; c = runpy.run_path(sys.argv[1]); "
        "print(json.dumps(c['header_map'])); c['on_exit'](None)"
    )
    config = str(ROOT / "config" / "gunicorn.conf.py")

    def header_map(**env: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", probe, config], capture_output=True, text=True, check=True,
            env={"PATH": "/usr/bin:/bin", **env},
        )  # fmt: skip
        return done.stdout.strip().strip('"')

    assert header_map() == "drop"
    assert header_map(WSGATE_UNDERSCORE_HEADERS="1") == "dangerous"


def test_every_row_of_the_readme_table_has_its_test():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("### Every difference from coreBOS", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (D\d+) \|", table, flags=re.M)
    tests = sorted(
        int(name[6:].split("_", 1)[0])
        for name in globals()
        if re.match(r"test_d\d+_", name)
    )
    assert [int(row[1:]) for row in rows] == tests == list(range(1, len(rows) + 1))


def test_d17_a_rest_session_api_beside_webservice_php(make_app):
    client = make_app().test_client()
    answer = client.post("/v1/auth/logout")
    assert answer.status_code == 200 and answer.get_json() == {"message": "Logged out successfully"}
    assert client.get("/v1/me/sessions").mimetype == "application/problem+json"

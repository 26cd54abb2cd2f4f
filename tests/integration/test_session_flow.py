"""The session life cycle against a real redis-server: the walk, shared death, and real timeouts."""

from __future__ import annotations

import time

import pytest

from tests.integration.conftest import USERNAME, client_of, error_code, gateway_of
from tests.wsclient import proof
from webservice.store.tokens import SessionId

pytestmark = pytest.mark.integration


def family_key(app, session_name: str) -> str:
    parsed = SessionId.parse(session_name)
    assert parsed is not None, session_name
    return gateway_of(app).keys.family(parsed.family_id)


def test_full_walk_getchallenge_login_listtypes_logout(real_ws, real_app, real_redis, alice):
    challenge = real_ws.call("getchallenge", "GET", username=USERNAME)
    assert challenge["success"] is True, challenge
    result = challenge["result"]
    assert set(result) == {"token", "serverTime", "expireTime"}
    assert isinstance(result["token"], str) and result["token"]
    assert isinstance(result["serverTime"], int) and isinstance(result["expireTime"], int)
    assert abs(result["serverTime"] - time.time()) < 5
    assert result["expireTime"] > result["serverTime"]

    login = real_ws.call(
        "login", username=USERNAME, accessKey=proof(result["token"], alice.access_key)
    )
    assert login["success"] is True, login
    assert set(login["result"]) == {"sessionName", "userId", "version", "vtigerVersion"}
    session_name = login["result"]["sessionName"]
    assert login["result"]["userId"] == f"19x{alice.id}"
    assert login["result"]["version"] == "0.22"
    real_ws.session_name = session_name

    # The session id is URL-safe, and Redis holds no copy of its secret.
    assert all(c.isalnum() or c in "-_." for c in session_name), session_name
    secret = session_name.split(".", 1)[1]
    for key in real_redis.scan_iter():
        assert secret not in key
        if real_redis.type(key) == "hash":
            for field, value in real_redis.hgetall(key).items():
                assert secret not in field and secret not in value, key

    listed = real_ws.authed("listtypes", "GET")
    assert listed["success"] is True, listed
    assert "Users" in listed["result"]["types"]

    assert real_ws.authed("logout") == {"success": True, "result": {"message": "successfull"}, "moreinfo": None}
    assert real_redis.exists(family_key(real_app, session_name)) == 0

    refused = real_ws.authed("listtypes")
    assert refused == {
        "success": False,
        "error": {"code": "AUTHENTICATION_REQUIRED", "message": "Authentication required"},
        "moreinfo": None,
    }
    assert error_code(real_ws.authed("logout")) == "AUTHENTICATION_REQUIRED"
    # The token was single use: logging in with it again is refused.
    again = real_ws.call(
        "login", username=USERNAME, accessKey=proof(result["token"], alice.access_key)
    )
    assert error_code(again) == "INVALID_AUTH_TOKEN"


def test_logout_in_one_app_instance_is_seen_by_another_at_once(real_app, make_app, alice):
    first = client_of(real_app)
    second_app = make_app()
    second = client_of(second_app)
    assert gateway_of(second_app).redis is not gateway_of(real_app).redis

    for ending, other in ((first, second), (second, first)):
        assert ending.login(USERNAME, alice.access_key)["success"]
        other.session_name = ending.session_name
        assert other.authed("listtypes")["success"], "a session is valid in every instance"
        assert ending.authed("logout")["success"]
        # No waiting: the other instance asks Redis on every request and caches nothing.
        assert error_code(other.authed("listtypes")) == "AUTHENTICATION_REQUIRED"
        assert error_code(other.authed("logout")) == "AUTHENTICATION_REQUIRED"


def test_idle_timeout_refuses_an_unused_session_and_keeps_a_busy_one(make_app, real_redis):
    app = make_app(SESSION_IDLE_TIMEOUT=1)
    gateway_of(app).users.add(USERNAME)
    key = gateway_of(app).users.get(USERNAME).access_key
    idle, busy = client_of(app), client_of(app)
    assert idle.login(USERNAME, key)["success"] and busy.login(USERNAME, key)["success"]
    busy_key = family_key(app, busy.session_name)

    # The family key expires by itself at the idle deadline: Redis never keeps a dead session.
    ttl = real_redis.pttl(family_key(app, idle.session_name))
    assert 0 < ttl <= 1000, ttl

    start = time.monotonic()
    idle_checked = False
    while time.monotonic() - start < 2.0:
        answer = busy.authed("listtypes")
        assert answer["success"], (time.monotonic() - start, answer)
        assert 0 < real_redis.pttl(busy_key) <= 1000
        if not idle_checked and time.monotonic() - start > 1.25:
            assert error_code(idle.authed("listtypes")) == "AUTHENTICATION_REQUIRED"
            idle_checked = True
        time.sleep(0.4)
    assert idle_checked
    assert busy.authed("listtypes")["success"], "used every 0.4 s, alive after 2 s"
    assert error_code(idle.authed("listtypes")) == "AUTHENTICATION_REQUIRED"


def test_a_busy_session_is_marked_used_at_most_once_a_second(make_app, real_redis):
    """A check marks its member used (and moves the family key's expiry) at most once per
    min(1 s, idle timeout / 100): the checks in between write nothing, so a busy session costs
    Redis reads only; its idle timeout may end it up to that much early, never late."""
    app = make_app(SESSION_IDLE_TIMEOUT=600)
    gateway_of(app).users.add(USERNAME)
    ws = client_of(app)
    assert ws.login(USERNAME, gateway_of(app).users.get(USERNAME).access_key)["success"]
    parsed = SessionId.parse(ws.session_name)
    assert parsed is not None
    key, field = family_key(app, ws.session_name), f"l:{parsed.member}"

    def writes() -> int:
        stats = real_redis.info("commandstats")
        calls = [stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("hset", "pexpireat")]
        return sum(int(count) for count in calls)

    marked, expires, written = real_redis.hget(key, field), real_redis.pexpiretime(key), writes()
    for _ in range(5):
        assert ws.authed("listtypes")["success"]
    assert (real_redis.hget(key, field), real_redis.pexpiretime(key)) == (marked, expires)
    assert writes() == written
    time.sleep(1.05)
    assert ws.authed("listtypes")["success"]
    assert int(real_redis.hget(key, field)) >= int(marked) + 1000
    assert real_redis.pexpiretime(key) >= expires + 1000


def test_absolute_timeout_ends_even_a_busy_session(make_app, real_redis):
    app = make_app(SESSION_IDLE_TIMEOUT=1, SESSION_ABSOLUTE_TIMEOUT=2)
    gateway_of(app).users.add(USERNAME)
    key = gateway_of(app).users.get(USERNAME).access_key
    busy = client_of(app)
    started = time.monotonic()
    assert busy.login(USERNAME, key)["success"]
    # The family's absolute deadline lies between started + 2 s and logged_in + 2 s.
    logged_in = time.monotonic()
    family = family_key(app, busy.session_name)

    while time.monotonic() - started < 1.7:
        assert busy.authed("listtypes")["success"], time.monotonic() - started
        asked_at = time.monotonic()
        remaining = real_redis.pttl(family)
        # Never beyond the idle deadline, nor beyond the absolute one.
        assert 0 < remaining <= 1000, remaining
        assert remaining <= (logged_in + 2.0 - asked_at) * 1000 + 20, remaining
        time.sleep(0.4)

    time.sleep(max(0.0, logged_in + 2.05 - time.monotonic()))
    assert error_code(busy.authed("listtypes")) == "AUTHENTICATION_REQUIRED"
    assert error_code(busy.authed("logout")) == "AUTHENTICATION_REQUIRED"
    assert real_redis.exists(family) == 0

"""API sessions: the id, what Redis keeps, timeouts, logout, and ids that are not sessions."""

from __future__ import annotations

import base64
import os
import random
import re
import string
import time

import pytest

from tests.unit.conftest import gateway_of
from tests.unit.support import (
    alive,
    all_text,
    envelope,
    error,
    get,
    listtypes,
    login,
    post,
    result,
    snapshot,
)
from webservice.store.session_values import ClientInfo
from webservice.store.tokens import SessionId

SESSION_ID = re.compile(r"[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}")


def family_key(gateway, session_id: str) -> str:
    return gateway.keys.family(SessionId.parse(session_id).family_id)


def member(session_id: str) -> str:
    return SessionId.parse(session_id).member


def now_ms() -> int:
    return int(time.time() * 1000)


# --- The id ----------------------------------------------------------------------------------------


def test_session_id_shape_and_strength(client, alice):
    ids = [login(client, "alice", alice.access_key) for _ in range(20)]
    assert len(set(ids)) == 20
    assert len({i.split(".")[0] for i in ids}) == 20
    for session_id in ids:
        assert len(session_id) == 66
        assert SESSION_ID.fullmatch(session_id), session_id
        assert not set(session_id) & set("&+%#=/? \t\n")
        secret = session_id.split(".")[1]
        # URL-safe base64 carries 6 bits a character: the secret alone is well over 128 bits.
        assert len(secret) * 6 >= 128
        assert len(base64.urlsafe_b64decode(secret + "=")) * 8 >= 128


def test_redis_holds_no_session_secret(client, alice, bob, redis):
    ids = [login(client, "alice", alice.access_key) for _ in range(3)]
    ids.append(login(client, "bob", bob.access_key))
    for session_id in ids:
        assert alive(client, session_id)
    stored = all_text(redis)
    for session_id in ids:
        secret = session_id.split(".")[1]
        assert secret not in stored
        # Not even a sizeable piece of it.
        for start in range(0, len(secret) - 16, 8):
            assert secret[start : start + 16] not in stored


def test_the_family_record_names_user_and_member_hash_only(client, alice, gateway):
    session_id = login(client, "alice", alice.access_key)
    record = gateway.redis.hgetall(family_key(gateway, session_id))
    assert record["u"] == str(alice.id)
    assert record["n"] == "alice"
    assert record["r"] == member(session_id)
    assert f"l:{member(session_id)}" in record
    assert int(record["x"]) - now_ms() == pytest.approx(gateway.settings["SESSION_ABSOLUTE_TIMEOUT"] * 1000, abs=5000)


# --- Timeouts --------------------------------------------------------------------------------------


def test_idle_session_is_dead_and_removed(client, alice, gateway):
    session_id = login(client, "alice", alice.access_key)
    key = family_key(gateway, session_id)
    idle_ms = gateway.settings["SESSION_IDLE_TIMEOUT"] * 1000
    gateway.redis.hset(key, f"l:{member(session_id)}", now_ms() - idle_ms - 1000)
    error(listtypes(client, session_id), "AUTHENTICATION_REQUIRED", "Authentication required")
    assert not gateway.redis.exists(key)
    error(listtypes(client, session_id), "AUTHENTICATION_REQUIRED", "Authentication required")


def test_session_used_just_within_idle_time_lives(client, alice, gateway):
    session_id = login(client, "alice", alice.access_key)
    idle_ms = gateway.settings["SESSION_IDLE_TIMEOUT"] * 1000
    gateway.redis.hset(family_key(gateway, session_id), f"l:{member(session_id)}", now_ms() - idle_ms + 60_000)
    assert alive(client, session_id)
    # ... and the use counts: the last-use mark is now.
    last = int(gateway.redis.hget(family_key(gateway, session_id), f"l:{member(session_id)}"))
    assert abs(last - now_ms()) < 5000


def test_absolute_timeout_ends_a_busy_session(client, alice, gateway):
    session_id = login(client, "alice", alice.access_key)
    key = family_key(gateway, session_id)
    assert alive(client, session_id)
    gateway.redis.hset(key, "x", now_ms() - 1)
    error(listtypes(client, session_id), "AUTHENTICATION_REQUIRED", "Authentication required")
    assert not gateway.redis.exists(key)


def test_idle_timeout_really_elapses(make_app):
    app = make_app({"SESSION_IDLE_TIMEOUT": 0.5})
    alice = gateway_of(app).users.add("alice")
    client = app.test_client()
    busy = login(client, "alice", alice.access_key)
    lazy = login(client, "alice", alice.access_key)
    for _ in range(5):  # 0.75 s of use, every 0.15 s, keeps ``busy`` alive past its idle time
        time.sleep(0.15)
        assert alive(client, busy)
    assert not alive(client, lazy)


def test_absolute_timeout_really_elapses(make_app):
    app = make_app({"SESSION_ABSOLUTE_TIMEOUT": 0.6})
    alice = gateway_of(app).users.add("alice")
    client = app.test_client()
    session_id = login(client, "alice", alice.access_key)
    time.sleep(0.1)
    assert alive(client, session_id)
    time.sleep(0.6)
    assert not alive(client, session_id)


def test_touching_extends_the_key_ttl(client, alice, gateway):
    session_id = login(client, "alice", alice.access_key)
    key = family_key(gateway, session_id)
    idle_ms = gateway.settings["SESSION_IDLE_TIMEOUT"] * 1000
    assert idle_ms - 5000 < gateway.redis.pttl(key) <= idle_ms
    gateway.redis.pexpire(key, 5000)
    # Used a while ago (a touch marks a session used at most once a second).
    gateway.redis.hset(key, f"l:{member(session_id)}", now_ms() - 2000)
    assert alive(client, session_id)
    assert idle_ms - 5000 < gateway.redis.pttl(key) <= idle_ms


def test_key_ttl_never_outlives_the_absolute_expiry(client, alice, gateway):
    session_id = login(client, "alice", alice.access_key)
    key = family_key(gateway, session_id)
    gateway.redis.hset(key, "x", now_ms() + 10_000)
    gateway.redis.hset(key, f"l:{member(session_id)}", now_ms() - 2000)
    assert alive(client, session_id)
    assert 0 < gateway.redis.pttl(key) <= 10_000


def _extend(gateway, session_id: str) -> str:
    """Adds a second member to the family of ``session_id`` (what extendsession does)."""
    root = SessionId.parse(session_id)
    added = SessionId.new(root.family_id)
    answer = gateway.sessions.extend(root, added, ClientInfo("192.0.2.1", "test"), root_kind="api")
    assert answer is not None
    return str(added)


def test_idle_member_dies_alone_idle_root_ends_the_family(client, alice, gateway):
    root = login(client, "alice", alice.access_key)
    other = _extend(gateway, root)
    assert alive(client, other) and alive(client, root)
    key = family_key(gateway, root)
    idle_ms = gateway.settings["SESSION_IDLE_TIMEOUT"] * 1000
    gateway.redis.hset(key, f"l:{member(other)}", now_ms() - idle_ms - 1000)
    assert not alive(client, other)
    assert f"l:{member(other)}" not in gateway.redis.hgetall(key)
    assert alive(client, root)
    third = _extend(gateway, root)
    gateway.redis.hset(key, f"l:{member(root)}", now_ms() - idle_ms - 1000)
    assert not alive(client, root)
    assert not gateway.redis.exists(key)
    assert not alive(client, third)


# --- Logout ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", [get, post])
def test_logout(client, alice, gateway, method):
    session_id = login(client, "alice", alice.access_key)
    key = family_key(gateway, session_id)
    body = method(client, operation="logout", sessionName=session_id)
    assert result(body) == {"message": "successfull"}
    assert not gateway.redis.exists(key)
    assert gateway.redis.zcard(gateway.keys.user_families(alice.id)) == 0
    assert not alive(client, session_id)
    error(method(client, operation="logout", sessionName=session_id), "AUTHENTICATION_REQUIRED", "Authentication required")


def test_logout_via_header(client, alice):
    session_id = login(client, "alice", alice.access_key)
    body = post(client, headers={"corebos-authorization": session_id}, operation="logout")
    assert result(body) == {"message": "successfull"}
    assert not alive(client, session_id)


def test_logout_without_session(client):
    error(post(client, operation="logout"), "AUTHENTICATION_REQUIRED", "Authentication required")


def test_logout_ends_only_its_own_family(client, alice):
    one = login(client, "alice", alice.access_key)
    two = login(client, "alice", alice.access_key)
    result(post(client, operation="logout", sessionName=one))
    assert not alive(client, one)
    assert alive(client, two)


def test_logout_ends_every_member_of_the_family(client, alice, gateway):
    root = login(client, "alice", alice.access_key)
    linked = _extend(gateway, root)
    result(post(client, operation="logout", sessionName=linked))
    assert not alive(client, root)
    assert not alive(client, linked)


def test_logout_via_header_of_another_session_of_the_same_user(client, alice):
    caller = login(client, "alice", alice.access_key)
    target = login(client, "alice", alice.access_key)
    body = post(client, headers={"corebos-authorization": caller}, operation="logout", sessionName=target)
    assert result(body) == {"message": "successfull"}
    assert not alive(client, target)
    assert alive(client, caller)


def test_logout_of_another_users_session_is_denied(client, alice, bob, redis):
    caller = login(client, "alice", alice.access_key)
    victim = login(client, "bob", bob.access_key)
    body = post(client, headers={"corebos-authorization": caller}, operation="logout", sessionName=victim)
    error(body, "ACCESS_DENIED")
    assert alive(client, victim)
    assert alive(client, caller)


@pytest.mark.parametrize("target", ["junk", "0" * 66, "dead"])
def test_logout_via_header_of_a_session_that_is_not_live(client, alice, target):
    caller = login(client, "alice", alice.access_key)
    if target == "dead":
        target = login(client, "alice", alice.access_key)
        result(post(client, operation="logout", sessionName=target))
    body = post(client, headers={"corebos-authorization": caller}, operation="logout", sessionName=target)
    error(body, "AUTHENTICATION_REQUIRED", "Authentication required")
    assert alive(client, caller)


# --- Ids that are not sessions ----------------------------------------------------------------


def _garbage_ids(real: str) -> list[str]:
    rng = random.Random(1234)
    family, secret = real.split(".")
    alphabet = string.ascii_letters + string.digits + "-_"
    other_secret = "".join(rng.choice(alphabet) for _ in range(43))
    return [
        "x",
        "*",
        "{}",
        "{" + family + "}",
        "\n",
        "a\nb",
        real + "\n",
        real + "x",
        real[:-1],
        real.replace(".", "-"),
        real.replace(".", ""),
        f"{family}.{other_secret}",  # a real family, the wrong secret
        f"{'A' * 22}.{secret}",  # an unknown family, a secret that is real elsewhere
        "".join(rng.choice(alphabet) for _ in range(22)) + "." + other_secret,
        f"{family}.{secret[:-1]}*",
        f"{family}*{secret}",
        "é" * 66,
        "*" * 66,
        "{" * 66,
        "." * 66,
        "a" * 65,
        "a" * 67,
        "a" * 10_000,
        os.urandom(66).decode("latin-1"),
        os.urandom(300).decode("latin-1"),
        "wsgate:user:alice",
        "19x1",
    ]


@pytest.mark.parametrize("index", range(27))
@pytest.mark.parametrize("transport", ["query", "form", "json"])
def test_garbage_session_ids_change_nothing(client, alice, redis, index, transport):
    real = login(client, "alice", alice.access_key)
    garbage = _garbage_ids(real)
    assert len(garbage) == 27
    bad = garbage[index]
    before = snapshot(redis)
    params = {"operation": "listtypes", "sessionName": bad}
    if transport == "query":
        response = client.get("/webservice.php", query_string=params)
    elif transport == "form":
        response = client.post("/webservice.php", data=params)
    else:
        response = client.post("/webservice.php", json=params)
    error(envelope(response), "AUTHENTICATION_REQUIRED", "Authentication required")
    assert snapshot(redis) == before
    assert alive(client, real)


@pytest.mark.parametrize(
    "bad",
    ["x", "*", "{}", "a" * 66, "A" * 22 + "." + "B" * 43, "a" * 5000, "null-ish", "\u00e9\u00e9"],
)
def test_garbage_session_ids_in_the_header_change_nothing(client, alice, redis, bad):
    real = login(client, "alice", alice.access_key)
    before = snapshot(redis)
    response = client.get(
        "/webservice.php",
        query_string={"operation": "listtypes", "sessionName": real},
        headers={"corebos-authorization": bad.encode("utf-8").decode("latin-1")},
    )
    error(envelope(response), "AUTHENTICATION_REQUIRED", "Authentication required")
    assert snapshot(redis) == before


def test_garbage_logout_changes_nothing(client, alice, redis):
    real = login(client, "alice", alice.access_key)
    family, secret = real.split(".")
    before = snapshot(redis)
    for bad in [f"{family}.{'A' * 43}", "*", family]:
        error(post(client, operation="logout", sessionName=bad), "AUTHENTICATION_REQUIRED")
    assert snapshot(redis) == before
    assert alive(client, real)

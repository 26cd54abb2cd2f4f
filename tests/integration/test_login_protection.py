"""Limits, hidden users and the audit trail on a real redis-server: counters shared by two app
instances under concurrency, getchallenge at a steady rate, timing of hidden unknown users, round
trips, the capped stream and ``flask audit tail --follow``."""

from __future__ import annotations

import json
import os
import queue
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import pytest

from tests.conftest import TEST_SETTINGS
from tests.gunicorn_process import ROOT
from tests.integration.conftest import (
    USERNAME,
    Tally,
    client_of,
    counting_client,
    error_code,
    gateway_of,
    run_threads,
)
from tests.wsclient import WebServiceClient, proof
from webservice.standalone import create_app
from webservice.store.audit import AuditEvent

pytestmark = pytest.mark.integration


def wrong_login(ws: WebServiceClient, username: str = USERNAME) -> dict:
    answer = ws.call("getchallenge", "GET", username=username)
    token = answer["result"]["token"] if answer["success"] else "0" * 32
    return ws.call("login", username=username, accessKey=proof(token, "not the key"))


# --- counters across workers -----------------------------------------------------------------------


def test_no_failure_is_lost_across_two_app_instances(make_app, real_redis):
    apps = [make_app(LOGIN_FAILURE_LIMIT=1000, LOGIN_ADDRESS_FAILURE_LIMIT=1000) for _ in range(2)]
    gateway_of(apps[0]).users.add(USERNAME)
    answers = run_threads(40, lambda i: wrong_login(client_of(apps[i % 2])))
    assert {error_code(a) for a in answers} == {"INVALID_USER_CREDENTIALS"}
    keys = gateway_of(apps[0]).keys
    assert real_redis.get(keys.login_failures_of_user(USERNAME)) == "40"
    assert real_redis.get(keys.login_failures_of_address("127.0.0.1")) == "40"
    assert real_redis.xlen(keys.audit_log()) == 40


def test_the_limit_holds_across_two_app_instances_under_a_storm(make_app, real_redis):
    apps = [make_app() for _ in range(2)]
    alice = gateway_of(apps[0]).users.add(USERNAME)
    answers = run_threads(30, lambda i: wrong_login(client_of(apps[i % 2])))
    codes = [error_code(a) for a in answers]
    tried = codes.count("INVALID_USER_CREDENTIALS")
    assert set(codes) <= {"INVALID_USER_CREDENTIALS", "TOO_MANY_REQUESTS"}
    # Every failure that was tried is counted exactly; only logins already between the check
    # and the count when the limit was reached get past it (at most the threads in flight).
    counted = int(real_redis.get(gateway_of(apps[0]).keys.login_failures_of_user(USERNAME)))
    assert counted == tried >= 5
    assert codes.count("TOO_MANY_REQUESTS") >= 1
    for app in apps:
        ws = client_of(app)
        assert error_code(ws.login(USERNAME, alice.access_key)) == "TOO_MANY_REQUESTS"


def test_a_success_on_one_instance_resets_for_the_other(make_app):
    first, second = make_app(), make_app()
    alice = gateway_of(first).users.add(USERNAME)
    for _ in range(4):
        assert error_code(wrong_login(client_of(first))) == "INVALID_USER_CREDENTIALS"
    assert client_of(second).login(USERNAME, alice.access_key)["success"]
    # The address still has its 4 failures; the username starts over.
    assert error_code(wrong_login(client_of(first))) == "INVALID_USER_CREDENTIALS"
    assert error_code(wrong_login(client_of(second))) == "TOO_MANY_REQUESTS"


# --- getchallenge at a steady rate ---------------------------------------------------------------


def test_thirty_challenges_a_second_from_one_address_all_work(real_app, alice):
    ws = client_of(real_app)
    start = time.monotonic()
    answers = []
    for i in range(90):
        delay = start + i / 30 - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        answers.append(ws.call("getchallenge", "GET", username=USERNAME))
    assert time.monotonic() - start < 6
    assert all(answer["success"] for answer in answers), [a for a in answers if not a["success"]][:1]


def test_a_flood_of_challenges_is_cut_off(real_app, alice):
    def flood(_: int) -> list[dict]:
        ws = client_of(real_app)
        return [ws.call("getchallenge", "GET", username=USERNAME) for _ in range(40)]

    codes = [error_code(answer) for batch in run_threads(8, flood) for answer in batch]
    assert codes.count(None) >= 100  # the burst, and what refilled meanwhile
    assert set(codes) == {None, "TOO_MANY_REQUESTS"}


# --- hidden unknown users: timing and round trips ------------------------------------------------


def _timed(step: Callable[[], dict], expected: str) -> float:
    start = time.perf_counter()
    answer = step()
    elapsed = time.perf_counter() - start
    assert error_code(answer) == expected, answer
    return elapsed


def test_an_unknown_name_takes_as_long_as_a_wrong_key(make_app):
    app = make_app(
        HIDE_UNKNOWN_USERS=True,
        LOGIN_FAILURE_LIMIT=10_000,
        LOGIN_ADDRESS_FAILURE_LIMIT=10_000,
        CHALLENGE_RATE_LIMIT=0,
    )
    gateway_of(app).users.add(USERNAME)
    ws = client_of(app)
    timings: dict[str, list[float]] = {USERNAME: [], "nobody": []}

    def attempt(name: str) -> float:
        token = ws.call("getchallenge", "GET", username=name)["result"]["token"]
        return _timed(
            lambda: ws.call("login", username=name, accessKey=proof(token, "wrong")),
            "INVALID_USER_CREDENTIALS",
        )

    for _ in range(5):  # warm up
        attempt(USERNAME), attempt("nobody")
    for _ in range(60):
        for name in timings:
            timings[name].append(attempt(name))
    known, unknown = (statistics.median(timings[name]) for name in (USERNAME, "nobody"))
    print(f"\nmedian login: wrong key {known * 1e3:.2f} ms, unknown name {unknown * 1e3:.2f} ms")
    assert 0.5 < unknown / known < 2.0


def test_round_trips_of_hidden_users_and_limits(redis_server, real_redis):
    tally = Tally()
    app = create_app(
        {**TEST_SETTINGS, "REDIS_URL": redis_server.url, "HIDE_UNKNOWN_USERS": True},
        redis_client=counting_client(redis_server, tally),
        web_session_client=counting_client(redis_server, tally, decode_responses=False),
    )
    access_key = gateway_of(app).users.add(USERNAME).access_key
    ws = client_of(app)

    def measure(step: Callable[[], dict], expected: str | None) -> int:
        tally.round_trips = 0
        answer = step()
        assert error_code(answer) == expected, answer
        return tally.round_trips

    def challenge_then(name: str, key: str) -> Callable[[], dict]:
        token = ws.call("getchallenge", "GET", username=name)["result"]["token"]
        return lambda: ws.call("login", username=name, accessKey=proof(token, key))

    wrong_login(ws), wrong_login(ws, "nobody")  # scripts loaded
    real_redis.delete(*real_redis.keys("*login-failures*"))
    first = measure(challenge_then(USERNAME, access_key), None)  # loads the rest
    real_redis.delete(*real_redis.keys("*known-addresses*"))
    figures = {
        # The first login of a user from an address remembers the address (limits.py).
        "login, first from an address": measure(challenge_then(USERNAME, access_key), None),
        "getchallenge": measure(lambda: ws.call("getchallenge", "GET", username=USERNAME), None),
        "getchallenge, unknown name": measure(
            lambda: ws.call("getchallenge", "GET", username="nobody"), None
        ),
        "login": measure(challenge_then(USERNAME, access_key), None),
        "login, wrong key": measure(challenge_then(USERNAME, "wrong"), "INVALID_USER_CREDENTIALS"),
        "login, unknown name": measure(challenge_then("nobody", "wrong"), "INVALID_USER_CREDENTIALS"),
    }
    for _ in range(4):
        wrong_login(ws)
    figures["login, limited"] = measure(challenge_then(USERNAME, access_key), "TOO_MANY_REQUESTS")
    print("\n" + "\n".join(f"{name:<28} {n}" for name, n in figures.items()))
    assert first >= 3
    assert figures == {
        "login, first from an address": 3,
        # The rate limit's token taken in the script that issues the challenge (a single Redis).
        "getchallenge": 1,
        "getchallenge, unknown name": 1,
        "login": 2,
        "login, wrong key": 2,
        "login, unknown name": 2,
        "login, limited": 1,
    }


# --- the audit trail -----------------------------------------------------------------------------


def test_the_stream_stays_near_its_cap(make_app, real_redis):
    app = make_app(AUDIT_MAX_ENTRIES=50)
    trail = gateway_of(app).audit
    for i in range(1000):
        trail.record(AuditEvent("login", "api", user=f"u{i}"))
    length = real_redis.xlen(gateway_of(app).keys.audit_log())
    # MAXLEN ~ trims whole stream nodes (100 entries each by default), never below the cap.
    assert 50 <= length <= 50 + 100
    newest = real_redis.xrevrange(gateway_of(app).keys.audit_log(), count=1)[0][1]
    assert newest["user"] == "u999"


def test_a_login_after_redis_forgot_its_scripts_is_written_once(real_app, alice, real_redis):
    ws = client_of(real_app)
    assert ws.login(USERNAME, alice.access_key)["success"]
    real_redis.script_flush()
    assert ws.login(USERNAME, alice.access_key)["success"]
    assert ws.authed("logout")["success"]
    real_redis.script_flush()
    assert error_code(wrong_login(ws)) == "INVALID_USER_CREDENTIALS"
    stream = real_redis.xrange(gateway_of(real_app).keys.audit_log())
    assert [fields["event"] for _id, fields in stream] == ["login", "login", "logout", "login_failed"]


def test_a_login_on_a_redis_that_knows_only_some_of_its_scripts_starts_its_family_once(
    real_app, alice, real_redis
):
    """A Redis that knows the login's own script but not one that rides with it (a gateway
    upgraded over a long-running Redis): the riders are sent again, the family is not (a second
    run of the login's script would find its token used and refuse the login)."""
    ws = client_of(real_app)
    assert ws.login(USERNAME, alice.access_key)["success"]
    sessions = gateway_of(real_app).sessions
    real_redis.script_flush()
    sessions.OPEN_FROM_CHALLENGE.load(real_redis)
    answer = ws.login(USERNAME, alice.access_key)
    assert answer["success"], answer
    assert ws.authed("listtypes")["success"]
    stream = real_redis.xrange(gateway_of(real_app).keys.audit_log())
    assert [fields["event"] for _id, fields in stream] == ["login", "login"]


def test_tail_follow_prints_entries_as_they_come(real_app, redis_server, alice):
    ws = client_of(real_app)
    ws.login(USERNAME, alice.access_key)
    env = {
        **os.environ,
        "WSGATE_REDIS_URL": redis_server.url,
        "WSGATE_REDIS_SOCKET_TIMEOUT": "0.5",
    }
    command = [sys.executable, "-m", "flask", "--app", "wsgi", "audit", "tail", "-n", "1",
               "--follow", "--json", "--user", USERNAME]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    try:
        first = json.loads(lines.get(timeout=30))
        assert (first["event"], first["user"]) == ("login", USERNAME)
        # Quiet for longer than the socket timeout: waiting is no error.
        time.sleep(1.5)
        assert process.poll() is None
        wrong_login(ws, "somebody")  # another user's entry is not shown
        ws.authed("logout")
        second = json.loads(lines.get(timeout=30))
        assert (second["event"], second["user"]) == ("logout", USERNAME)
        assert second["handle"] == first["handle"]
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_hidden_mode_walk(make_app):
    """Decoys for a name, a wrong key for a user: the same answers, and the right key still works
    (on a cluster the decoy record and the user record share a slot)."""
    app = make_app(HIDE_UNKNOWN_USERS=True)
    alice = gateway_of(app).users.add(USERNAME)
    ws = client_of(app)
    for name in (USERNAME, "nobody"):
        assert error_code(wrong_login(ws, name)) == "INVALID_USER_CREDENTIALS"
        answer = ws.call("login", username=name, accessKey="0" * 32)
        assert error_code(answer) == "INVALID_USER_CREDENTIALS"
    assert gateway_of(app).users.get("nobody") is None
    assert ws.login(USERNAME, alice.access_key)["success"]
    assert ws.authed("logout")["success"]
    events = [e.event.event for e in gateway_of(app).audit.tail(10)[0]]
    assert events == ["login_failed"] * 4 + ["login", "logout"]

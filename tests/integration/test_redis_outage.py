"""Redis going away and coming back under a running app instance."""

from __future__ import annotations

import signal
import time

import pytest
import redis

from tests.conftest import TEST_SETTINGS
from tests.integration.conftest import USERNAME, client_of, error_code, gateway_of
from tests.wsclient import proof
from webservice.standalone import create_app
from webservice.standalone.redis_server import RedisServer, free_port
from webservice.store.challenges import ChallengeStore
from webservice.store.sessions import SessionStore

pytestmark = pytest.mark.integration

#: Each request must get its answer within this while Redis is down.
BOUND_SECONDS = 5.0
SCRIPTS = {
    "IN_ONE_STEP": ChallengeStore.IN_ONE_STEP,
    "OPEN_FROM_CHALLENGE": SessionStore.OPEN_FROM_CHALLENGE,
    "TOUCH": SessionStore.TOUCH,
}


def timed(call, *args, **kwargs) -> tuple[dict, float]:
    started = time.monotonic()
    answer = call(*args, **kwargs)
    return answer, time.monotonic() - started


def raw_client(server: RedisServer) -> redis.Redis:
    return redis.Redis.from_url(server.url, decode_responses=True)


def test_outage_gives_service_unavailable_and_the_same_app_recovers(tmp_path):
    port = free_port()
    first = RedisServer(tmp_path / "first", port).start()
    second = None
    try:
        app = create_app({**TEST_SETTINGS, "REDIS_URL": first.url})
        access_key = gateway_of(app).users.add(USERNAME).access_key
        ws = client_of(app)
        assert ws.login(USERNAME, access_key)["success"]
        assert ws.authed("listtypes")["success"]
        old_session = ws.session_name

        first.stop()

        calls = {
            "getchallenge": lambda: ws.call("getchallenge", "GET", username=USERNAME),
            "login": lambda: ws.call("login", username=USERNAME, accessKey="0" * 32),
            "listtypes": lambda: ws.authed("listtypes"),
            "logout": lambda: ws.authed("logout"),
        }
        for name, call in calls.items():
            for _ in range(2):  # the first attempt and one on the now-broken pool
                answer, seconds = timed(call)
                assert error_code(answer) == "SERVICE_UNAVAILABLE", (name, answer)
                assert answer["error"]["message"], answer
                assert seconds < BOUND_SECONDS, (name, seconds)
        # What needs no Redis is still answered as usual.
        assert error_code(ws.call("nosuchoperation")) == "UNKNOWN_OPERATION"

        # A new, empty server on the same port: no data, no loaded scripts.
        second = RedisServer(tmp_path / "second", port).start()
        raw = raw_client(second)
        assert raw.dbsize() == 0
        # The user comes back through another app instance, so that this one's scripts stay
        # unloaded and its next requests meet NOSCRIPT.
        other = create_app({**TEST_SETTINGS, "REDIS_URL": second.url})
        access_key = gateway_of(other).users.add(USERNAME).access_key
        assert raw.script_exists(*(script.sha for script in SCRIPTS.values())) == [False] * 3

        # The very same app instance, not recreated, serves again.
        login = ws.login(USERNAME, access_key)
        assert login["success"], login
        assert ws.authed("listtypes")["success"]
        assert raw.script_exists(*(script.sha for script in SCRIPTS.values())) == [True] * 3
        ws_old = client_of(app)
        ws_old.session_name = old_session
        assert error_code(ws_old.authed("listtypes")) == "AUTHENTICATION_REQUIRED"
        assert ws.authed("logout")["result"] == {"message": "successfull"}
        assert error_code(ws.authed("listtypes")) == "AUTHENTICATION_REQUIRED"
        raw.close()
    finally:
        first.stop()
        if second is not None:
            second.stop()


def test_a_restart_between_requests_is_invisible_to_clients(tmp_path):
    """A persistent Redis restarts while the app is idle: the session survives and the first
    request afterwards succeeds (a dead pooled connection and NOSCRIPT are handled inside)."""
    port = free_port()
    directory = tmp_path / "redis"
    server = RedisServer(directory, port, persistent=True).start()
    try:
        app = create_app({**TEST_SETTINGS, "REDIS_URL": server.url})
        access_key = gateway_of(app).users.add(USERNAME).access_key
        ws = client_of(app)
        assert ws.login(USERNAME, access_key)["success"]
        assert ws.authed("listtypes")["success"]

        server.stop()
        server = RedisServer(directory, port, persistent=True).start()
        raw = raw_client(server)
        assert raw.script_exists(SessionStore.TOUCH.sha) == [False]
        raw.close()

        answer = ws.authed("listtypes")
        assert answer["success"], answer
        challenge = ws.call("getchallenge", "GET", username=USERNAME)
        assert challenge["success"], challenge
        login = ws.call(
            "login", username=USERNAME, accessKey=proof(challenge["result"]["token"], access_key)
        )
        assert login["success"], login
        assert ws.authed("logout")["success"]
    finally:
        server.stop()


def test_a_frozen_redis_answers_within_the_socket_timeout_and_then_recovers(tmp_path):
    """A hung server (process stopped, socket open) must not hang the request: the socket timeout
    bounds it (one retry included), and once Redis runs again no stale reply is mistaken for the
    answer to a later command."""
    socket_timeout = 0.5
    server = RedisServer(tmp_path / "redis").start()
    try:
        app = create_app(
            {**TEST_SETTINGS, "REDIS_URL": server.url, "REDIS_SOCKET_TIMEOUT": socket_timeout}
        )
        access_key = gateway_of(app).users.add(USERNAME).access_key
        ws = client_of(app)
        assert ws.login(USERNAME, access_key)["success"]

        server.process.send_signal(signal.SIGSTOP)
        try:
            for call in (
                lambda: ws.authed("listtypes"),
                lambda: ws.call("getchallenge", "GET", username=USERNAME),
            ):
                answer, seconds = timed(call)
                assert error_code(answer) == "SERVICE_UNAVAILABLE", answer
                assert seconds < min(BOUND_SECONDS, 2 * socket_timeout + 1.0), seconds
        finally:
            server.process.send_signal(signal.SIGCONT)

        listed = ws.authed("listtypes")
        assert listed["success"] and listed["result"]["types"] == ["Users"], listed
        challenge = ws.call("getchallenge", "GET", username=USERNAME)
        assert set(challenge["result"]) == {"token", "serverTime", "expireTime"}, challenge
    finally:
        server.stop()


def test_outage_with_the_default_shared_secret_key_gives_service_unavailable(tmp_path):
    """With no SECRET_KEY configured (the default) the app fetches a shared one from Redis before
    its first request; Redis being down then must still give SERVICE_UNAVAILABLE, not another code.
    TESTING is off so that errors are handled as in production, not raised into the test."""
    port = free_port()
    settings = {
        **TEST_SETTINGS,
        "TESTING": False,
        "SECRET_KEY": None,
        "REDIS_URL": f"redis://127.0.0.1:{port}/0",
    }
    app = create_app(settings)
    ws = client_of(app)
    for call in (
        lambda: ws.call("getchallenge", "GET", username=USERNAME),
        lambda: ws.call("listtypes", sessionName="A" * 22 + "." + "B" * 43),
    ):
        answer, seconds = timed(call)
        assert error_code(answer) == "SERVICE_UNAVAILABLE", answer
        assert seconds < BOUND_SECONDS, seconds

    with RedisServer(tmp_path / "redis", port):
        access_key = gateway_of(app).users.add(USERNAME).access_key
        assert ws.login(USERNAME, access_key)["success"]
        assert ws.authed("listtypes")["success"]

"""Revocations the replicas confirm (REDIS_WAIT_REPLICAS): on a real master and its real replica.

A revocation is acknowledged only once the replica has it. When the replica cannot confirm in time
(its process stopped with SIGSTOP, or more replicas asked for than there are), the client is told
SERVICE_UNAVAILABLE "Logout not confirmed; retry", the revocation is in force on the master, and
a retry succeeds once the replica is back. With REDIS_WAIT_REPLICAS 0 nothing changes: the same
round trips as before.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from prometheus_client import REGISTRY

from tests.conftest import TEST_SETTINGS
from tests.host.hostapp import PASSWORDS, create_host_app
from tests.integration.conftest import USERNAME, Tally, client_of, counting_client, error_code
from tests.integration.test_linked_sessions_race import (
    CHEAP_HASHER,
    PASSWORD,
    Api,
    Browser,
    FlaskTransport,
    handle_for,
)
from webservice.standalone import create_app
from webservice.standalone.redis_server import RedisServer, RedisServerError
from webservice.store.tokens import SessionId

pytestmark = pytest.mark.integration

#: Short, so that an unconfirmed revocation answers quickly.
WAIT_TIMEOUT_MS = 100
NOT_CONFIRMED = {"code": "SERVICE_UNAVAILABLE", "message": "Logout not confirmed; retry"}


class Replicated:
    """A master and one replica of it, on loopback."""

    def __init__(self, directory: Path) -> None:
        self.master = RedisServer(directory / "master")
        self.replica = RedisServer(
            directory / "replica", extra_args=["--repl-diskless-sync-delay", "0"]
        )

    def start(self) -> Replicated:
        self.master.start()
        self.replica.extra_args += ["--replicaof", "127.0.0.1", str(self.master.port)]
        self.replica.start()
        self.wait_in_sync()
        return self

    def wait_in_sync(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        with self.client(self.master) as master:
            while master.info("replication").get("connected_slaves") != 1 or (
                master.wait(1, 100) != 1
            ):
                if time.monotonic() > deadline:
                    raise RedisServerError("the replica did not sync")
                time.sleep(0.05)

    def client(self, server: RedisServer) -> redis.Redis:
        return redis.Redis(port=server.port, decode_responses=True)

    @contextmanager
    def replica_stopped(self) -> Iterator[None]:
        """The replica's process stopped (SIGSTOP): it acknowledges nothing until resumed."""
        assert self.replica.process is not None
        os.kill(self.replica.process.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(self.replica.process.pid, signal.SIGCONT)
        self.wait_in_sync()

    def stop(self) -> None:
        self.replica.stop()
        self.master.stop()


@pytest.fixture(scope="module")
def replicated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicated]:
    pair = Replicated(tmp_path_factory.mktemp("replicated")).start()
    try:
        yield pair
    finally:
        pair.stop()


@pytest.fixture
def pair(replicated: Replicated) -> Replicated:
    with replicated.client(replicated.master) as master:
        master.flushall()
    replicated.wait_in_sync()
    return replicated


def durable_app(pair: Replicated, replicas: int = 1, **settings: Any) -> Flask:
    app = create_app(
        {
            **TEST_SETTINGS,
            "REDIS_URL": pair.master.url,
            "REDIS_WAIT_REPLICAS": replicas,
            "REDIS_WAIT_TIMEOUT": WAIT_TIMEOUT_MS,
            **settings,
        }
    )
    app.extensions["wsgate"].users.hasher = CHEAP_HASHER
    return app


def family_key(app: Flask, session_id: str) -> str:
    parsed = SessionId.parse(session_id)
    assert parsed is not None
    return app.extensions["wsgate"].keys.family(parsed.family_id)


def logged_in(app: Flask) -> tuple[Any, str]:
    """A wire client of ``app`` with a live session of alice (added once per app)."""
    gateway = app.extensions["wsgate"]
    user = gateway.users.get(USERNAME) or gateway.users.add(USERNAME, PASSWORD)
    ws = client_of(app)
    assert ws.login(USERNAME, user.access_key)["success"]
    return ws, ws.session_name


def test_a_confirmed_logout_is_on_the_replica_when_it_is_acknowledged(pair: Replicated):
    """Same answers, same two round trips as without confirmation; the replica already has
    the logout when the client hears of it."""
    tally = Tally()
    app = create_app(
        {**TEST_SETTINGS, "REDIS_URL": pair.master.url, "REDIS_WAIT_REPLICAS": 1},
        redis_client=counting_client(pair.master, tally),
    )
    warm_up, _ = logged_in(app)
    assert warm_up.authed("logout")["success"]  # its scripts loaded: counted below, sent once
    ws, session = logged_in(app)
    replica = pair.client(pair.replica)
    pair.wait_in_sync()
    assert replica.exists(family_key(app, session))
    before = tally.round_trips
    assert ws.authed("logout")["result"] == {"message": "successfull"}
    assert tally.round_trips - before == 2
    # No waiting here: WAIT already made sure.
    assert not replica.exists(family_key(app, session))
    assert error_code(ws.authed("listtypes")) == "AUTHENTICATION_REQUIRED"
    replica.close()


def test_an_unconfirmed_api_logout_is_in_force_and_its_retry_succeeds(pair: Replicated):
    app = durable_app(pair)
    ws, session = logged_in(app)
    other = client_of(app)
    other.session_name = session
    with pair.replica_stopped():
        assert ws.authed("logout")["error"] == NOT_CONFIRMED
        # In force on the master: the session is refused at once, by every worker.
        assert error_code(other.authed("listtypes")) == "AUTHENTICATION_REQUIRED"
        # A retry while the replica is still away is not confirmed either.
        assert ws.authed("logout")["error"] == NOT_CONFIRMED
    assert ws.authed("logout")["result"] == {"message": "successfull"}
    with pair.client(pair.replica) as replica:
        assert not replica.exists(family_key(app, session))
    # Logged out: anything else is refused, as before.
    assert error_code(ws.authed("listtypes")) == "AUTHENTICATION_REQUIRED"


def test_the_retry_grace_ends(pair: Replicated):
    app = durable_app(pair, REDIS_WAIT_RETRY_GRACE=1)
    ws, _ = logged_in(app)
    with pair.replica_stopped():
        assert ws.authed("logout")["error"] == NOT_CONFIRMED
    time.sleep(1.2)
    assert error_code(ws.authed("logout")) == "AUTHENTICATION_REQUIRED"


def test_a_retried_logout_needs_the_session_secret(pair: Replicated):
    """The ended family is remembered by the hashes of its members' secrets: another secret of
    that family id (its handle is public) is refused as before."""
    app = durable_app(pair)
    ws, session = logged_in(app)
    with pair.replica_stopped():
        assert ws.authed("logout")["error"] == NOT_CONFIRMED
    forged = client_of(app)
    forged.session_name = SessionId.new(session.split(".")[0]).__str__()
    assert error_code(forged.authed("logout")) == "AUTHENTICATION_REQUIRED"
    assert ws.authed("logout")["success"]


def revocations(reason: str) -> float:
    """``wsgate_session_revocations_total`` of API revocations for ``reason``, in this process."""
    value = REGISTRY.get_sample_value(
        "wsgate_session_revocations_total", {"via": "api", "reason": reason}
    )
    return value or 0.0


def test_unconfirmed_endsession_and_endallsessions_are_retried(pair: Replicated):
    app = durable_app(pair)
    ws, session = logged_in(app)
    _, victim = logged_in(app)
    with pair.replica_stopped():
        answer = ws.authed("endsession", handle=handle_for(victim))
        assert answer["error"] == NOT_CONFIRMED
        assert not Api(FlaskTransport(app, cookies=False)).works(victim)
    assert ws.authed("endsession", handle=handle_for(victim))["result"] == {"message": "ended"}

    _, third = logged_in(app)
    counted = revocations("endallsessions")
    with pair.replica_stopped():
        assert ws.authed("endallsessions")["error"] == NOT_CONFIRMED
        assert not Api(FlaskTransport(app, cookies=False)).works(third)
    # The retry's own session has ended: it is told of success and ends nothing more. The two
    # logins were counted once, by the first try (made on the master, if not confirmed).
    assert ws.authed("endallsessions")["result"] == {"ended": 0}
    assert revocations("endallsessions") - counted == 2
    # Nobody else's revoked session gets that far.
    stranger = client_of(app)
    stranger.session_name = third
    assert ws.authed("listtypes")["success"] is False
    assert stranger.authed("endsession", handle=handle_for(session))["success"] is False


def test_an_unconfirmed_web_logout_keeps_the_browser_told_until_it_is_confirmed(pair: Replicated):
    app = durable_app(pair)
    logged_in(app)  # adds alice
    browser = Browser(FlaskTransport(app))
    browser.log_in(USERNAME)
    assert browser.page_status() == "ok"
    linked = browser.extend("token")["result"]["sessionName"]
    api = Api(FlaskTransport(app, cookies=False))
    with pair.replica_stopped():
        reply = browser.post("/logout")
        assert reply.status == 503 and "Logout not confirmed" in reply.text
        # Ended on the master, the linked API session with it...
        assert not api.works(linked)
        # ... and the browser is told, page after page, until the replica confirms.
        assert browser.get("/").status == 503
    reply = browser.post("/logout")
    assert (reply.status, reply.location) == (302, "/login")
    assert browser.page_status() == "login"


@pytest.mark.parametrize("command", ["sessions revoke", "sessions revoke-user", "users disable"])
def test_unconfirmed_operator_revocations_say_so_and_can_be_run_again(
    pair: Replicated, command: str
):
    app = durable_app(pair)
    ws, session = logged_in(app)
    argument = handle_for(session) if command == "sessions revoke" else USERNAME
    runner = app.test_cli_runner()
    with pair.replica_stopped():
        first = runner.invoke(args=[*command.split(), argument])
        assert first.exit_code == 1, first.output
        assert "confirmed by 0 of 1 replica(s)" in first.output
        assert "run the command again" in first.output
        assert error_code(ws.authed("listtypes")) == "AUTHENTICATION_REQUIRED"
    again = runner.invoke(args=[*command.split(), argument])
    assert again.exit_code == 0, again.output


def test_more_replicas_asked_than_there_are_is_never_confirmed(pair: Replicated):
    """Two replicas asked of one: logins and logouts are made on the master, never confirmed."""
    ws, session = logged_in(durable_app(pair))
    strict = durable_app(pair, replicas=2)
    on_strict = client_of(strict)
    on_strict.session_name = session
    assert on_strict.authed("logout")["error"] == NOT_CONFIRMED
    assert on_strict.authed("logout")["error"] == NOT_CONFIRMED
    with pair.client(pair.master) as master:
        assert not master.exists(family_key(strict, session))
    access_key = strict.extensions["wsgate"].users.get(USERNAME).access_key
    answer = client_of(strict).login(USERNAME, access_key)
    assert answer["error"] == {"code": "SERVICE_UNAVAILABLE", "message": "Login not confirmed; retry"}


def test_an_unconfirmed_rest_logout_is_retried(pair: Replicated):
    app = durable_app(pair)
    ws, session = logged_in(app)
    rest = app.test_client()
    bearer = {"Authorization": f"Bearer {session}"}
    with pair.replica_stopped():
        first = rest.post("/v1/auth/logout", headers=bearer)
        assert first.status_code == 503
        assert first.json["detail"] == "Logout not confirmed; retry."
        assert error_code(ws.authed("listtypes")) == "AUTHENTICATION_REQUIRED"
        assert rest.post("/v1/auth/logout", headers=bearer).status_code == 503
    again = rest.post("/v1/auth/logout", headers=bearer)
    assert again.status_code == 200, again.json


def test_an_unconfirmed_host_logout_keeps_the_browser_logged_in_until_it_is_confirmed(
    pair: Replicated,
):
    """A host's ``logout_user()`` raises NotConfirmed (the host answers 500 here: it does not
    handle RedisError); the browser is still logged in as far as its session says, every page
    says the logout is not confirmed, and logging out again, once the replica is back, works."""
    app = create_host_app(
        pair.master.url,
        config={"WSGATE_REDIS_WAIT_REPLICAS": 1, "WSGATE_REDIS_WAIT_TIMEOUT": WAIT_TIMEOUT_MS},
    )
    browser = app.test_client()
    login = browser.post("/login", data={"username": "alice", "password": PASSWORDS["alice"]})
    assert login.status_code == 302
    assert browser.get("/whoami").json == {"anonymous": False, "username": "alice"}
    with pair.replica_stopped():
        assert browser.post("/logout").status_code == 500
        assert browser.get("/whoami").status_code == 500
    assert browser.post("/logout").status_code == 302
    assert browser.get("/whoami").json == {"anonymous": True, "username": None}

"""A logout of the caller's own session, made in one round trip on a single Redis (END_OWN) and
announced once made, against the general logout (checked, then ended with its riders), which a
host's receiver of ``family_ended`` brings back: both answer and leave the store alike.

Each test runs on both paths. The app of ``one step`` has a recorder of ``family_ended`` connected
with ``after_the_fact=True``; the app of ``two steps`` has it connected as a host connects one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask

from tests.conftest import TEST_SETTINGS
from tests.integration.conftest import (
    USERNAME,
    Tally,
    client_of,
    counting_client,
    error_code,
    gateway_of,
)
from tests.wsclient import WebServiceClient
from webservice import events
from webservice.standalone import create_app
from webservice.store.session_values import ClientInfo
from webservice.store.sessions import SessionStore
from webservice.store.tokens import SessionId

pytestmark = pytest.mark.integration

PATHS = ("one step", "two steps")


@dataclass
class Heard:
    """What the recorder heard of ``family_ended``: (reason, user, handle, detail, whether the
    family was still in Redis when it heard)."""

    endings: list[tuple[str, str, str, str, bool]] = field(default_factory=list)
    #: The audit flag of each announcement's round trip.
    audited: list[bool] = field(default_factory=list)


@dataclass
class Setup:
    app: Flask
    tally: Tally
    heard: Heard
    path: str

    def family_key(self, session_name: str) -> str:
        parsed = SessionId.parse(session_name)
        assert parsed is not None
        return gateway_of(self.app).keys.family(parsed.family_id)

    def logged_in(self) -> WebServiceClient:
        client = client_of(self.app)
        key = gateway_of(self.app).users.get(USERNAME).access_key
        assert client.login(USERNAME, key)["success"]
        return client

    def logout(self, client: WebServiceClient, **params: Any) -> tuple[dict, int]:
        """The answer to ``logout`` and the round trips it made."""
        before = self.tally.round_trips
        answer = client.call("logout", **params)
        return answer, self.tally.round_trips - before

    def logout_entries(self) -> list[dict[str, str]]:
        entries, _ = gateway_of(self.app).audit.tail(100)
        return [e.event.as_fields() for e in entries if e.event.event in ("logout", "end")]


@pytest.fixture(params=PATHS)
def setup(request, redis_server, real_redis) -> Setup:
    return build(request.param, redis_server, real_redis)


def build(path: str, redis_server, real_redis, **settings: Any) -> Setup:
    tally = Tally()
    app = create_app(
        {**TEST_SETTINGS, "REDIS_URL": redis_server.url, **settings},
        redis_client=counting_client(redis_server, tally),
    )
    heard = Heard()
    keys = gateway_of(app).keys

    def record(sender: Any, event: events.SessionEvent, round_trip: events.RoundTrip, **_: Any):
        family = event.handle.partition(":")[0]
        alive = bool(family) and real_redis.exists(keys.family(family)) == 1
        heard.endings.append((event.reason, event.user, event.handle, event.detail, alive))
        heard.audited.append(round_trip.audited)

    events.connect(app, {events.family_ended: record}, after_the_fact=path == "one step")
    for script in (SessionStore.TOUCH, SessionStore.END_OWN):
        script.load(real_redis)  # the round trips counted are those of a running server
    gateway_of(app).users.add(USERNAME)
    return Setup(app, tally, heard, path)


def handle_of(session_name: str) -> str:
    parsed = SessionId.parse(session_name)
    assert parsed is not None
    return parsed.handle


def test_an_own_logout_ends_the_family_its_index_entry_and_writes_one_entry(setup, real_redis):
    client = setup.logged_in()
    other = setup.logged_in()  # another login of the same user: untouched
    name = client.session_name
    gateway = gateway_of(setup.app)
    index = gateway.keys.user_families(gateway.users.get(USERNAME).id)
    family = SessionId.parse(name).family_id
    assert real_redis.zscore(index, family) is not None

    answer, round_trips = setup.logout(client, sessionName=name)

    assert answer == {"success": True, "result": {"message": "successfull"}, "moreinfo": None}
    assert round_trips == (1 if setup.path == "one step" else 2)
    assert real_redis.exists(setup.family_key(name)) == 0
    assert real_redis.zscore(index, family) is None
    assert real_redis.zscore(index, SessionId.parse(other.session_name).family_id) is not None
    assert other.authed("listtypes")["success"]
    [entry] = setup.logout_entries()
    assert entry == {
        "event": "logout",
        "via": "api",
        "user": USERNAME,
        "handle": handle_of(name),
        "address": "127.0.0.1",
        "agent": entry["agent"],
        "reason": "",
        "detail": "",
    }
    # One step: heard once made (the family gone), the entry already written by the change.
    # Two steps: heard first, while the family lives, and the trail rode the ending.
    made_first = setup.path == "one step"
    assert setup.heard.endings == [("logout", USERNAME, handle_of(name), "", not made_first)]
    assert setup.heard.audited == [made_first]
    assert error_code(client.authed("listtypes")) == "AUTHENTICATION_REQUIRED"


def test_the_session_header_and_a_session_name_naming_it_end_alike(setup, real_redis):
    by_header = setup.logged_in()
    answer, round_trips = setup.logout(
        by_header, headers={"corebos-authorization": by_header.session_name}
    )
    assert answer["success"], answer
    assert round_trips == (1 if setup.path == "one step" else 2)
    assert real_redis.exists(setup.family_key(by_header.session_name)) == 0

    both = setup.logged_in()
    answer, _ = setup.logout(
        both,
        headers={"corebos-authorization": both.session_name},
        sessionName=both.session_name,
    )
    assert answer["success"], answer
    assert real_redis.exists(setup.family_key(both.session_name)) == 0
    assert [e["handle"] for e in setup.logout_entries()] == [
        handle_of(by_header.session_name),
        handle_of(both.session_name),
    ]


@pytest.mark.parametrize(
    "session_name",
    [
        None,
        "",
        "null",
        "garbage",
        "0" * 32 + "." + "0" * 43,  # well formed, never handed out
        "x" * 5000,
    ],
)
def test_a_logout_without_a_live_session_is_refused_and_changes_nothing(
    setup, real_redis, session_name
):
    client = setup.logged_in()
    before = sorted(real_redis.keys("*"))
    entries = setup.logout_entries()
    params = {} if session_name is None else {"sessionName": session_name}

    answer, round_trips = setup.logout(client_of(setup.app), **params)

    assert error_code(answer) == "AUTHENTICATION_REQUIRED", answer
    assert round_trips <= 1
    assert sorted(real_redis.keys("*")) == before
    assert setup.logout_entries() == entries
    assert setup.heard.endings == []
    assert client.authed("listtypes")["success"]


def test_a_session_logged_out_twice_is_refused_the_second_time(setup):
    client = setup.logged_in()
    assert setup.logout(client, sessionName=client.session_name)[0]["success"]
    again, _ = setup.logout(client, sessionName=client.session_name)
    assert error_code(again) == "AUTHENTICATION_REQUIRED"
    assert len(setup.logout_entries()) == 1
    assert len(setup.heard.endings) == 1


@pytest.mark.parametrize("path", PATHS)
def test_a_timed_out_session_is_refused_as_the_check_refuses_it_and_its_timeout_announced(
    redis_server, real_redis, path
):
    """The vtiger profile keeps a timed-out record one idle timeout, and tells it apart: the
    logout finds it idle, ends it, announces ``idle_timeout`` and writes no logout entry."""
    setup = build(path, redis_server, real_redis, SESSION_IDLE_TIMEOUT=1, WIRE_PROFILE="vtiger")
    client, busy = setup.logged_in(), setup.logged_in()
    listtypes_refused = setup.logged_in()
    time.sleep(1.3)
    expected = error_code(listtypes_refused.authed("listtypes"))
    assert expected not in (None, "AUTHENTICATION_REQUIRED")  # vtiger's own code for a timeout

    answer, _ = setup.logout(client, sessionName=client.session_name)

    assert error_code(answer) == expected
    assert real_redis.exists(setup.family_key(client.session_name)) == 0
    assert setup.logout_entries() == []
    reasons = [(reason, user, handle) for reason, user, handle, _, _ in setup.heard.endings]
    assert (
        "idle_timeout",
        USERNAME,
        handle_of(client.session_name),
    ) in reasons
    assert error_code(busy.authed("listtypes")) == expected  # idle too, for the record


def test_a_dead_session_is_refused_before_bad_parameters_and_a_live_one_is_not_ended(setup):
    """``sessionName`` that is no text (a JSON body) is a bad parameter; the session comes from
    the header. As for every operation, a dead session is refused first."""
    live = setup.logged_in()
    dead = setup.logged_in()
    assert setup.logout(dead, sessionName=dead.session_name)[0]["success"]
    client = setup.app.test_client()

    def logout_json(session_name: str) -> dict:
        return client.post(
            "/webservice.php",
            json={"operation": "logout", "sessionName": ["not", "text"]},
            headers={"corebos-authorization": session_name},
        ).get_json()

    assert error_code(logout_json(dead.session_name)) == "AUTHENTICATION_REQUIRED"
    assert error_code(logout_json(live.session_name)) == "INVALID_PARAMETER"
    assert live.authed("listtypes")["success"]


def test_a_logout_of_another_session_of_the_user_takes_the_general_path(setup, real_redis):
    caller, named = setup.logged_in(), setup.logged_in()
    answer, round_trips = setup.logout(
        caller,
        headers={"corebos-authorization": caller.session_name},
        sessionName=named.session_name,
    )
    assert answer["success"], answer
    assert round_trips >= 2
    assert real_redis.exists(setup.family_key(named.session_name)) == 0
    assert caller.authed("listtypes")["success"]
    [entry] = setup.logout_entries()
    assert (entry["handle"], entry["detail"]) == (
        handle_of(named.session_name),
        f"by {handle_of(caller.session_name)}",
    )
    assert setup.heard.audited == [False]


def test_a_web_login_is_not_ended_by_its_own_secret_used_as_an_api_session(setup):
    """The one step checks the member's kind as the check does: a web login's id is no API
    session, so logout refuses it and the web login lives on."""
    gateway = gateway_of(setup.app)
    web_id = SessionId.new()
    gateway.sessions.open_web(
        web_id, gateway.users.get(USERNAME).id, USERNAME, ClientInfo("127.0.0.1", "test")
    )
    answer, _ = setup.logout(client_of(setup.app), sessionName=str(web_id))
    assert error_code(answer) == "AUTHENTICATION_REQUIRED"
    assert gateway.sessions.check(web_id, "web") is not None
    assert setup.heard.endings == []

"""When a logout of one's own session may be made in one step (Endings.own_family), and the
pieces it is made of; tests/integration/test_one_step_logout.py runs both paths on a real Redis."""

from __future__ import annotations

from typing import Any

import fakeredis
import pytest

from tests.conftest import TEST_SETTINGS
from tests.unit.support import login, post
from webservice import events, settings
from webservice.standalone import create_app
from webservice.store.client import ClusterClient
from webservice.store.confirmation import Replicas
from webservice.store.family_lua import StreamEntry
from webservice.store.keys import RedisKeys
from webservice.store.sessions import SessionStore


def store(client: Any, replicas: Replicas | None = None) -> SessionStore:
    return SessionStore(
        client, RedisKeys(), idle_timeout=60, absolute_timeout=600, replicas=replicas
    )


def test_only_a_single_redis_without_confirmation_ends_in_one_step():
    single = fakeredis.FakeRedis(decode_responses=True)
    assert store(single).one_step_endings

    def no_cluster_yet() -> Any:
        raise AssertionError("telling a cluster apart must not connect to it")

    assert not store(ClusterClient(no_cluster_yet)).one_step_endings
    waits = Replicas.of({**settings.defaults(), "REDIS_WAIT_REPLICAS": 1}, RedisKeys())
    assert not store(single, waits).one_step_endings


def test_a_stream_entry_says_where_the_script_puts_the_user_and_the_handle():
    entry = StreamEntry(
        "p:audit", 1000, {"event": "end", "user": "", "via": "api", "handle": "", "x": "y"}
    )
    arguments = entry.arguments()
    assert arguments[:3] == [1000, 4, 8]
    pairs = arguments[3:]
    assert pairs == ["event", "end", "user", "", "via", "api", "handle", "", "x", "y"]
    # Lua counts from 1: the value after each name.
    assert (pairs[arguments[1] - 2], pairs[arguments[2] - 2]) == ("user", "handle")


def test_the_gateways_own_receivers_hear_after_the_fact_and_a_hosts_do_not(app):
    with app.app_context():
        assert events.hear_after_the_fact(events.family_ended)

    def host_receiver(sender: Any, **extra: Any) -> None:
        pass

    events.family_ended.connect(host_receiver, sender=app)
    try:
        with app.app_context():
            assert not events.hear_after_the_fact(events.family_ended)
    finally:
        events.family_ended.disconnect(host_receiver, sender=app)
    # A receiver of another app changes nothing for this one.
    other = create_app({**TEST_SETTINGS}, redis_client=fakeredis.FakeRedis(decode_responses=True))
    events.family_ended.connect(host_receiver, sender=other)
    try:
        with app.app_context():
            assert events.hear_after_the_fact(events.family_ended)
    finally:
        events.family_ended.disconnect(host_receiver, sender=other)


def test_a_host_receiver_hears_a_logout_before_it_is_made(app, fake_redis):
    """The general path: the receiver hears while the family still lives, and what it rides
    goes in the ending's round trip."""
    gateway = app.extensions["wsgate"]
    access_key = gateway.users.add("alice").access_key
    client = app.test_client()
    session_id = login(client, "alice", access_key)
    family_key = gateway.keys.family(session_id.partition(".")[0])
    heard: list[tuple[bool, bool]] = []

    class Rider:
        def queue(self, pipe: Any, change: Any) -> None:
            pipe.set("rode", "1")

        def sent(self, replies: list[Any]) -> None:
            pass

        def cancelled(self) -> None:
            pass

    def host_receiver(sender: Any, event: Any, round_trip: events.RoundTrip, **_: Any) -> None:
        heard.append((fake_redis.exists(family_key) == 1, round_trip.audited))
        round_trip.ride(Rider())

    events.family_ended.connect(host_receiver, sender=app)
    try:
        answer = post(client, operation="logout", sessionName=session_id)
    finally:
        events.family_ended.disconnect(host_receiver, sender=app)
    assert answer["success"], answer
    assert heard == [(True, False)]
    assert fake_redis.get("rode") == "1"
    assert not fake_redis.exists(family_key)
    [entry] = [e for e in gateway.audit.tail(10)[0] if e.event.event == "logout"]
    assert entry.event.user == "alice"


def test_an_event_changed_is_a_copy_and_only_its_fields_change():
    event = events.SessionEvent("api", user="alice", reason="logout")
    changed = event.but(handle="F:m", detail="by x")
    assert changed == events.SessionEvent(
        "api", user="alice", handle="F:m", reason="logout", detail="by x"
    )
    assert event.handle == "" and event.detail == ""
    with pytest.raises(TypeError):
        event.but(nosuch="x")

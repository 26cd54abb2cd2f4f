"""The audit entries of ``extendsession``, over HTTP on a real Redis: its own entry rides in its
one round trip, written once, and none is left by an extension that fails. At the family's cap
(MAX_SESSIONS_PER_FAMILY), on a single Redis, the script that ends the oldest member for the new
one writes that member's entry too, so the extension stays one round trip; a host's receiver of
``session_ended`` that rides something still gets it sent, in a round trip of its own."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import TEST_SETTINGS
from tests.integration.conftest import Tally, counting_client
from tests.integration.test_linked_sessions_race import (
    CHEAP_HASHER,
    ONE_ADDRESS_FOR_ALL,
    PASSWORD,
    Api,
    Browser,
    FlaskTransport,
)
from webservice import events
from webservice.standalone import create_app
from webservice.store.tokens import SessionId

pytestmark = pytest.mark.integration

CAP = 3


def capped_app(redis_server, tally: Tally):
    app = create_app(
        {
            **TEST_SETTINGS,
            **ONE_ADDRESS_FOR_ALL,
            "REDIS_URL": redis_server.url,
            "MAX_SESSIONS_PER_FAMILY": CAP,
        },
        redis_client=counting_client(redis_server, tally),
    )
    app.extensions["wsgate"].users.hasher = CHEAP_HASHER
    app.extensions["wsgate"].users.add("alice", PASSWORD)
    return app


def at_the_cap(app) -> tuple[Browser, list[str]]:
    """A browser logged in whose family holds CAP members: its login and CAP - 1 extensions."""
    browser = Browser(FlaskTransport(app))
    browser.log_in("alice")
    linked = [extended(browser) for _ in range(CAP - 1)]
    return browser, linked


def extended(browser: Browser) -> str:
    answer = browser.extend("token")
    assert answer["success"], answer
    return answer["result"]["sessionName"]


def cap_entries(app) -> list[dict[str, str]]:
    entries, _ = app.extensions["wsgate"].audit.tail(100)
    return [e.event.as_fields() for e in entries if e.event.reason == "session_cap"]


def handle(session_name: str) -> str:
    parsed = SessionId.parse(session_name)
    assert parsed is not None
    return parsed.handle


def test_the_oldest_members_end_is_written_by_the_extension_in_its_one_round_trip(
    redis_server, real_redis
):
    tally = Tally()
    app = capped_app(redis_server, tally)
    browser, linked = at_the_cap(app)
    extended(browser)  # the first extension past the cap loads nothing new: scripts are warm
    ended = [linked.pop(0)]
    before = tally.round_trips
    newest = extended(browser)
    ended.append(linked.pop(0))

    assert tally.round_trips - before == 1
    assert [
        (e["event"], e["via"], e["user"], e["handle"], e["detail"]) for e in cap_entries(app)
    ] == [("end", "api", "alice", handle(name), "") for name in ended]
    assert all(e["address"] and e["agent"] for e in cap_entries(app))
    api = Api(FlaskTransport(app, cookies=False))
    for name in ended:
        assert not api.works(name)
    assert api.works(newest)


def test_a_host_receiver_of_session_ended_hears_it_and_what_it_rides_is_sent(
    redis_server, real_redis
):
    tally = Tally()
    app = capped_app(redis_server, tally)
    heard: list[tuple[str, str, bool]] = []

    class Rider:
        def queue(self, pipe: Any, change: Any) -> None:
            pipe.incr("host:capped")

        def sent(self, replies: list[Any]) -> None:
            pass

        def cancelled(self) -> None:
            pass

    def on_ended(sender: Any, event: events.SessionEvent, round_trip: events.RoundTrip, **_: Any):
        heard.append((event.reason, event.handle, round_trip.audited))
        round_trip.ride(Rider())

    events.session_ended.connect(on_ended, sender=app)
    browser, linked = at_the_cap(app)
    extended(browser)
    before = tally.round_trips
    extended(browser)

    assert tally.round_trips - before == 2  # the extension, then what the receiver rides
    assert heard == [
        ("session_cap", handle(linked[0]), True),
        ("session_cap", handle(linked[1]), True),
    ]
    assert real_redis.get("host:capped") == "2"
    assert [e["handle"] for e in cap_entries(app)] == [handle(linked[0]), handle(linked[1])]


def extend_entries(app) -> list[dict[str, str]]:
    entries, _ = app.extensions["wsgate"].audit.tail(100)
    return [e.event.as_fields() for e in entries if e.event.event == "extend"]


def test_an_extensions_own_entry_rides_in_its_one_round_trip(redis_server, real_redis):
    tally = Tally()
    app = capped_app(redis_server, tally)
    heard: list[str] = []

    def on_extended(sender: Any, event: events.SessionEvent, round_trip: events.RoundTrip, **_):
        heard.append(event.handle)

    events.session_extended.connect(on_extended, sender=app)
    browser = Browser(FlaskTransport(app))
    browser.log_in("alice")
    extended(browser)  # scripts loaded
    before = (tally.round_trips, tally.commands)
    name = extended(browser)

    # The extension's script and the entry's XADD, in one pipeline.
    assert (tally.round_trips - before[0], tally.commands - before[1]) == (1, 2)
    assert heard[-1] == handle(name)
    entries = extend_entries(app)
    assert len(entries) == 2
    assert (entries[-1]["via"], entries[-1]["user"], entries[-1]["handle"]) == (
        "api",
        "alice",
        handle(name),
    )


def test_an_extension_of_an_ended_web_login_leaves_no_entry(redis_server, real_redis):
    """Its entry, written in its round trip before the script said no, is taken back."""
    tally = Tally()
    app = capped_app(redis_server, tally)
    browser = Browser(FlaskTransport(app))
    browser.log_in("alice")
    first = extended(browser)
    api = Api(FlaskTransport(app, cookies=False))
    assert api.call("logout", sessionName=first)["success"]  # ends the web login with it

    answer = browser.extend("token")

    assert not answer["success"], answer
    assert [e["handle"] for e in extend_entries(app)] == [handle(first)]

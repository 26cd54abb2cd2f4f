"""How many Redis round trips and commands each operation costs, measured on a real server.

Round trips are counted on the client: every ``send_packed_command`` of the app's connections is
one (a pipeline is sent in one). Commands are counted twice: those the client sends (a pipeline
of n is n), and those the server executed, from ``INFO commandstats`` deltas, which include the
commands a Lua script runs. ``pytest -s`` prints the table.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import redis

from tests.conftest import TEST_SETTINGS
from tests.integration.conftest import (
    USERNAME,
    Tally,
    client_of,
    counting_client,
    error_code,
    gateway_of,
    hear_endings,
)
from tests.wsclient import proof
from webservice.standalone import create_app

pytestmark = pytest.mark.integration

#: The designed cost of each operation in round trips (architecture: the request path).
DESIGNED_ROUND_TRIPS = {
    "listtypes": 1,
    "login": 2,
    "logout": 1,
    "getchallenge": 1,
    "login, wrong proof": 2,
    "listtypes, garbage session id": 0,
    "unknown operation": 0,
}
REPEATS = 5


def server_commands(monitor: redis.Redis) -> Counter:
    stats = monitor.info("commandstats")
    return Counter(
        {
            name.removeprefix("cmdstat_"): int(values["calls"])
            for name, values in stats.items()
            if name != "cmdstat_info"
        }
    )


@dataclass
class Measure:
    round_trips: list[int] = field(default_factory=list)
    client_commands: list[int] = field(default_factory=list)
    server_commands: list[Counter] = field(default_factory=list)


def test_round_trips_and_commands_per_operation(redis_server, real_redis):
    tally = Tally()
    # Both of the app's clients are counted: the gateway's and the web sessions' (Flask-Session
    # must not cost webservice.php requests anything).
    # The repeated wrong proofs below come from one address: more than its failure limit.
    app = create_app(
        {**TEST_SETTINGS, "REDIS_URL": redis_server.url, "LOGIN_ADDRESS_FAILURE_LIMIT": 100},
        redis_client=counting_client(redis_server, tally),
        web_session_client=counting_client(redis_server, tally, decode_responses=False),
    )
    access_key = gateway_of(app).users.add(USERNAME).access_key
    ws = client_of(app)
    spare = client_of(app)
    token_box: dict[str, str] = {}

    def getchallenge() -> dict:
        answer = ws.call("getchallenge", "GET", username=USERNAME)
        token_box["token"] = answer["result"]["token"]
        return answer

    def login() -> dict:
        answer = ws.call(
            "login", username=USERNAME, accessKey=proof(token_box["token"], access_key)
        )
        ws.session_name = answer["result"]["sessionName"]
        return answer

    steps: list[tuple[str, Callable[[], dict], str | None]] = [
        ("getchallenge", getchallenge, None),
        ("login", login, None),
        ("listtypes", lambda: ws.authed("listtypes"), None),
        ("logout", lambda: ws.authed("logout"), None),
        (
            "listtypes, garbage session id",
            lambda: spare.call("listtypes", sessionName="garbage*{}\n" + "x" * 100),
            "AUTHENTICATION_REQUIRED",
        ),
        ("unknown operation", lambda: spare.call("nosuchoperation"), "UNKNOWN_OPERATION"),
        # Not designed figures, shown for information.
        (
            "getchallenge, unknown user",
            lambda: spare.call("getchallenge", username="nobody"),
            "AUTHENTICATION_REQUIRED",
        ),
        (
            "login, wrong proof",
            lambda: spare.call("login", username=USERNAME, accessKey="0" * 32),
            "INVALID_USER_CREDENTIALS",
        ),
        ("listtypes, dead session", lambda: ws.authed("listtypes"), "AUTHENTICATION_REQUIRED"),
    ]

    # Warm up: connections open, scripts loaded, a spare challenge for "login, wrong proof".
    spare.call("getchallenge", username=USERNAME)
    for _, step, expected in steps:
        assert error_code(step()) == expected

    measures = {name: Measure() for name, _, _ in steps}
    for _ in range(REPEATS):
        for name, step, expected in steps:
            before = server_commands(real_redis)
            tally.round_trips = tally.commands = 0
            answer = step()
            measure = measures[name]
            measure.round_trips.append(tally.round_trips)
            measure.client_commands.append(tally.commands)
            measure.server_commands.append(server_commands(real_redis) - before)
            assert error_code(answer) == expected, (name, answer)

    print_table(measures)
    for name, designed in DESIGNED_ROUND_TRIPS.items():
        assert measures[name].round_trips == [designed] * REPEATS, (name, measures[name])
    assert measures["listtypes, garbage session id"].server_commands == [Counter()] * REPEATS
    # A dead session costs Redis one read of the family, not the clock as well: the check reads
    # the time only once it has found the member.
    dead = Counter({"evalsha": 1, "hmget": 1})
    assert measures["listtypes, dead session"].server_commands == [dead] * REPEATS
    # A user's getchallenge reads the user's record once: a record that exists is never empty,
    # so the read itself says whether the user exists (no EXISTS first).
    for executed in measures["getchallenge"].server_commands:
        assert executed["hgetall"] == 1 and "exists" not in executed, executed


def print_table(measures: dict[str, Measure]) -> None:
    print()
    header = ("operation", "round trips", "client cmds", "server cmds")
    print(f"{header[0]:<32} {header[1]:>11} {header[2]:>11} {header[3]:>11}  executed")
    for name, measure in measures.items():
        executed = measure.server_commands[-1]
        detail = " ".join(f"{cmd}:{n}" for cmd, n in sorted(executed.items()))
        print(
            f"{name:<32} {_figure(measure.round_trips):>11} {_figure(measure.client_commands):>11} "
            f"{_figure([sum(c.values()) for c in measure.server_commands]):>11}  {detail}"
        )


def _figure(values: list[int]) -> str:
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low}-{high}"


def test_counting_sees_a_pipeline_as_one_round_trip(redis_server, real_redis):
    """The probe itself: one pipeline of three commands is one send, three commands."""
    tally = Tally()
    client = counting_client(redis_server, tally)
    client.ping()
    tally.round_trips = tally.commands = 0
    pipe = client.pipeline(transaction=False)
    pipe.set("a", 1).incr("a").get("a")
    assert pipe.execute() == [True, 2, "2"]
    assert (tally.round_trips, tally.commands) == (1, 3)
    client.close()


@pytest.mark.parametrize("host_hears_first", [False, True], ids=["cap in script", "host hears"])
def test_a_login_past_the_users_cap_ends_the_oldest_in_its_own_round_trips(
    redis_server, real_redis, host_hears_first
):
    """A login one past MAX_FAMILIES_PER_USER ends the oldest family in the round trip that
    starts its own. On a single Redis the script that starts it picks and ends the oldest, so
    every such login is two round trips, in a process that never saw the user too. Where a
    host's receiver must hear of an ending first, the login's first round trip reads the user's
    live families, as this process knew the user's id from an earlier login; a process that
    never saw the user ends it in one more (the login's own round trip reads the oldest: not two
    more). Either way, each ending is announced once and audited once."""
    tally = Tally()
    settings = {**TEST_SETTINGS, "REDIS_URL": redis_server.url, "MAX_FAMILIES_PER_USER": 3}
    heard: list[tuple[str, int, bool]] = []

    def record(event, round_trip) -> None:  # type: ignore[no-untyped-def]
        heard.append((event.reason, round_trip.count, round_trip.audited))

    def listen(app) -> None:
        hear_endings(app, record, after_the_fact=not host_hears_first)

    app = create_app(settings, redis_client=counting_client(redis_server, tally))
    listen(app)
    access_key = gateway_of(app).users.add(USERNAME).access_key

    def log_in(ws) -> tuple[str, int]:
        token = ws.call("getchallenge", "GET", username=USERNAME)["result"]["token"]
        tally.round_trips = 0
        answer = ws.call("login", username=USERNAME, accessKey=proof(token, access_key))
        return answer["result"]["sessionName"], tally.round_trips

    ws = client_of(app)
    logins = [log_in(ws) for _ in range(5)]
    # (The first may load Lua scripts into this Redis.) The last two are past the cap.
    assert [round_trips for _, round_trips in logins[1:]] == [2] * 4
    # A process that does not know the user yet (another worker, just started).
    fresh = create_app(settings, redis_client=counting_client(redis_server, tally))
    listen(fresh)
    logins.append(log_in(client_of(fresh)))
    assert logins[-1][1] == (3 if host_hears_first else 2)

    alive = []
    for session, _ in logins:
        ws.session_name = session
        alive.append(error_code(ws.authed("listtypes")) is None)
    assert alive == [False, False, False, True, True, True]
    gateway = gateway_of(app)
    user_id = gateway.users.get(USERNAME).id
    assert real_redis.zcard(gateway.keys.user_families(user_id)) == 3
    entries, _ = gateway.audit.tail(50)
    assert [entry.event.event for entry in entries if entry.event.reason == "family_cap"] == [
        "end"
    ] * 3
    # Announced once made, the script having written the entry; or first, riding.
    assert heard == [("family_cap", 1, not host_hears_first)] * 3


def test_a_name_now_held_by_another_user_never_ends_the_former_users_families(
    redis_server, real_redis
):
    """The id a process keeps for a username is checked against the record the login reads: when
    the name now belongs to another user (another id), the login past no cap of its own ends
    nothing of the user that held the name before, however full that user's index."""
    settings = {**TEST_SETTINGS, "REDIS_URL": redis_server.url, "MAX_FAMILIES_PER_USER": 2}
    app = create_app(settings)
    gateway = gateway_of(app)
    access_key = gateway.users.add("carol").access_key
    former_id = gateway.users.get("carol").id
    ws = client_of(app)

    def log_in() -> str:
        token = ws.call("getchallenge", "GET", username="carol")["result"]["token"]
        answer = ws.call("login", username="carol", accessKey=proof(token, access_key))
        return answer["result"]["sessionName"]

    former = [log_in(), log_in()]  # the former user, at its cap; this process knows its id
    real_redis.hset(gateway.keys.user("carol"), "id", str(former_id + 1000))
    log_in()
    for session in former:
        ws.session_name = session
        assert error_code(ws.authed("listtypes")) is None
    assert real_redis.zcard(gateway.keys.user_families(former_id)) == 2
    assert real_redis.zcard(gateway.keys.user_families(former_id + 1000)) == 1

"""What only a cluster can show: where the web sessions live, scripts that every node forgot, and
an outage of the whole cluster."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from flask import Flask

from tests.cluster.conftest import LocalCluster, start_cluster
from tests.conftest import TEST_SETTINGS
from tests.integration.conftest import USERNAME, client_of, error_code
from tests.integration.test_concurrency import logins_racing_at_the_cap
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
from webservice.standalone.web_session import WebSessionInterface
from webservice.store.challenges import ChallengeStore
from webservice.store.client import ClusterClient
from webservice.store.scripts import LuaScript
from webservice.store.sessions import SessionStore
from webservice.store.users import UserDirectory

pytestmark = pytest.mark.cluster

SCRIPTS: dict[str, LuaScript] = {
    "ISSUE": ChallengeStore.ISSUE,
    "OPEN_FROM_CHALLENGE": SessionStore.OPEN_FROM_CHALLENGE,
    "OPEN_WEB": SessionStore.OPEN_WEB,
    "TOUCH": SessionStore.TOUCH,
    "EXTEND": SessionStore.EXTEND,
    "END_OWNED": SessionStore.END_OWNED,
    "CREATE": UserDirectory.CREATE,
    "UPDATE": UserDirectory.UPDATE,
}
#: Each request must get its answer within this while the cluster is down.
BOUND_SECONDS = 5.0
#: Browsers logged in to show that web sessions spread over every master.
BROWSERS = 30
#: Flask-Session 0.8, given a client that is not a ``redis.Redis``, quietly uses ``Redis()``.
LOCALHOST_REDIS_PORT = 6379


def cheap_app(make_app) -> Flask:
    app = make_app()
    app.extensions["wsgate"].users.hasher = CHEAP_HASHER
    return app


@pytest.fixture
def localhost_redis(tmp_path: Path) -> Iterator[redis.Redis | None]:
    """The Redis that Flask-Session falls back to, ``Redis()`` on localhost:6379: the one that
    answers there, or one started there for the test when the port is free (so that a fallback
    would have succeeded, quietly). ``None`` when something else holds the port."""
    client = redis.Redis(socket_connect_timeout=0.5, socket_timeout=2)
    server = None
    try:
        client.ping()
    except redis.ConnectionError:
        try:
            server = RedisServer(tmp_path / "localhost", LOCALHOST_REDIS_PORT).start()
        except RedisServerError:
            client.close()
            yield None
            return
    yield client
    client.close()
    if server is not None:
        server.stop()


def test_web_sessions_live_on_the_cluster_and_nowhere_else(
    make_app, redis_cluster: LocalCluster, localhost_redis
):
    app = cheap_app(make_app)
    interface = app.session_interface
    assert isinstance(interface, WebSessionInterface)
    # The client the settings describe, kept: not Flask-Session's fallback to a local Redis().
    assert isinstance(interface.client, ClusterClient)
    assert interface.client is not app.extensions["wsgate"].redis  # bytes, not str, answers
    user = app.extensions["wsgate"].users.add(USERNAME, PASSWORD)

    browsers = [Browser(FlaskTransport(app)) for _ in range(BROWSERS)]
    sids = [browser.log_in(user.username) for browser in browsers]
    linked = browsers[0].extend("token")
    assert linked["success"], linked
    assert Api(FlaskTransport(app, cookies=False)).works(linked["result"]["sessionName"])
    web_keys = {interface._get_store_id(sid) for sid in sids}

    masters = redis_cluster.node_clients(decode_responses=True)
    on_master = [set(master.scan_iter(match="wsgate:web:*", count=1000)) for master in masters]
    # Every web session is on exactly one master: the one that owns its key's slot...
    assert set().union(*on_master) == web_keys
    assert sum(len(keys) for keys in on_master) == len(web_keys)
    for keys, master in zip(on_master, masters):
        for key in keys:
            assert master.execute_command("CLUSTER", "KEYSLOT", key) in owned_slots(master)
    # ...and they spread over all of them, as any key does.
    assert all(on_master), [len(keys) for keys in on_master]
    # None is on the plain local Redis that Flask-Session would have used instead.
    if localhost_redis is not None:
        assert not any(localhost_redis.exists(key) for key in web_keys)
        assert not list(localhost_redis.scan_iter(match="wsgate:*", count=1000))

    # Logging out deletes the web session from its master.
    browsers[0].log_out()
    left = set().union(*(master.scan_iter(match="wsgate:web:*", count=1000) for master in masters))
    assert interface._get_store_id(sids[0]) not in left
    for master in masters:
        master.close()


def owned_slots(master: redis.Redis) -> set[int]:
    myself = next(
        line for line in master.execute_command("CLUSTER", "NODES").splitlines() if "myself" in line
    )
    slots: set[int] = set()
    for part in myself.split()[8:]:
        low, _, high = part.partition("-")
        slots.update(range(int(low), int(high or low) + 1))
    return slots


def test_scripts_that_every_node_forgot_are_reloaded_on_demand(
    make_app, redis_cluster: LocalCluster
):
    """SCRIPT FLUSH on every master before each step: each script call and each pipeline with a
    script in it meets NOSCRIPT, loads the script on every master and is answered as usual."""
    app = cheap_app(make_app)
    user = app.extensions["wsgate"].users.add(USERNAME, PASSWORD)
    masters = redis_cluster.node_clients()

    def forget() -> None:
        for master in masters:
            master.script_flush()
            assert not any(master.script_exists(*(s.sha for s in SCRIPTS.values())))

    def loaded_everywhere(name: str) -> bool:
        return all(master.script_exists(SCRIPTS[name].sha)[0] for master in masters)

    api = client_of(app)
    forget()
    challenge = api.call("getchallenge", "GET", username=USERNAME)  # a script call
    assert challenge["success"], challenge
    assert loaded_everywhere("ISSUE")
    forget()
    assert api.login(USERNAME, user.access_key)["success"]  # a script in a pipeline
    assert loaded_everywhere("OPEN_FROM_CHALLENGE")
    forget()
    assert api.authed("listtypes")["success"]
    assert loaded_everywhere("TOUCH")

    browser = Browser(FlaskTransport(app))
    assert browser.get("/login").status == 200
    forget()
    browser.log_in(USERNAME, from_open_tab=True)  # OPEN_WEB, in a pipeline
    assert loaded_everywhere("OPEN_WEB")
    forget()
    assert browser.page_status("/") == "ok"
    forget()
    extended = browser.extend("token")
    assert extended["success"], extended
    assert loaded_everywhere("EXTEND")
    linked = extended["result"]["sessionName"]
    forget()
    ended = api.authed("endsession", handle=handle_for(linked))
    assert ended == {"success": True, "result": {"message": "ended"}, "moreinfo": None}, ended
    assert loaded_everywhere("END_OWNED")
    assert browser.page_status("/") == "login", "ending the linked session ended the web login"
    forget()
    app.extensions["wsgate"].users.set_active(USERNAME, True)
    assert loaded_everywhere("UPDATE")
    assert api.authed("logout")["success"]
    assert error_code(api.authed("listtypes")) == "AUTHENTICATION_REQUIRED"
    for master in masters:
        master.close()


def test_a_cluster_outage_answers_service_unavailable_and_the_gateway_recovers(tmp_path: Path):
    """Every node stopped: requests answer SERVICE_UNAVAILABLE at once (never a traceback), an
    app instance made meanwhile starts anyway, and both serve again by themselves once the nodes
    are back (persistent, so the session survives)."""
    cluster = start_cluster(tmp_path, persistent=True)
    try:
        settings = {**TEST_SETTINGS, **cluster.settings}
        app = create_app(settings)
        access_key = app.extensions["wsgate"].users.add(USERNAME).access_key
        ws = client_of(app)
        assert ws.login(USERNAME, access_key)["success"]
        session_name = ws.session_name

        for node in cluster.nodes:
            node.stop()

        # Made while no node answers: redis-py's RedisCluster would refuse to be made.
        started_during = create_app(settings)
        late = client_of(started_during)
        late.session_name = session_name
        calls = {
            "getchallenge": lambda: ws.call("getchallenge", "GET", username=USERNAME),
            "login": lambda: ws.call("login", username=USERNAME, accessKey="0" * 32),
            "listtypes": lambda: ws.authed("listtypes"),
            "logout": lambda: ws.authed("logout"),
            "listtypes, app made during the outage": lambda: late.authed("listtypes"),
        }
        for name, call in calls.items():
            for _ in range(2):
                began = time.monotonic()
                answer = call()
                assert error_code(answer) == "SERVICE_UNAVAILABLE", (name, answer)
                assert time.monotonic() - began < BOUND_SECONDS, name

        for node in cluster.nodes:
            node.start()
        deadline = time.monotonic() + 30
        for client in (ws, late):
            while not (answer := client.authed("listtypes"))["success"]:
                assert error_code(answer) == "SERVICE_UNAVAILABLE", answer
                assert time.monotonic() < deadline, "the gateway did not recover"
                time.sleep(0.2)
        assert ws.authed("logout")["success"]
        assert error_code(late.authed("listtypes")) == "AUTHENTICATION_REQUIRED"
    finally:
        cluster.stop()


def test_a_login_past_the_users_cap_ends_the_oldest_family_on_its_own_master(
    make_app, real_redis, monkeypatch
):
    """The oldest family that a login past MAX_FAMILIES_PER_USER ends rides in the round trip
    that starts the new family, a pipeline over several masters: the family on whichever master,
    the user's index on another, the audit trail on a third."""
    app = make_app(MAX_FAMILIES_PER_USER=2)
    gateway = app.extensions["wsgate"]
    access_key = gateway.users.add(USERNAME).access_key or ""
    in_a_round_trip_of_its_own = []
    monkeypatch.setattr(
        gateway.logins.endings,
        "claimed",
        lambda *args, **kwargs: in_a_round_trip_of_its_own.append(args),
    )
    sessions = []
    for _ in range(6):
        ws = client_of(app)
        assert ws.login(USERNAME, access_key)["success"]
        sessions.append(ws.session_name)
    alive = []
    for name in sessions:
        ws = client_of(app)
        ws.session_name = name
        alive.append(error_code(ws.authed("listtypes")) is None)
    assert alive == [False, False, False, False, True, True]
    user_id = gateway.users.get(USERNAME).id
    assert real_redis.zcard(gateway.keys.user_families(user_id)) == 2
    entries, _ = gateway.audit.tail(50)
    assert sum(entry.event.reason == "family_cap" for entry in entries) == 4
    assert in_a_round_trip_of_its_own == []


def test_logins_racing_at_the_users_cap_on_a_cluster_leave_exactly_the_cap(make_app, real_redis):
    """On a cluster no script can end another slot's family, so logins at MAX_FAMILIES_PER_USER
    claim what they leave beyond it (one script on the user's index) and end what they claimed:
    12 logins of one user racing over three apps at a cap of 4 leave exactly the newest 4."""
    assert logins_racing_at_the_cap(make_app, real_redis, after_the_fact=True) is False


def test_getchallenge_takes_its_rate_token_first_and_a_refusal_writes_nothing(
    make_app, real_redis
):
    """On a cluster the rate limit's bucket and the user's record live in different slots, so
    getchallenge cannot take its token in the script that issues the challenge (as on a single
    Redis): it takes it in a round trip of its own first, and a refusal writes nothing else."""
    app = make_app(CHALLENGE_RATE_LIMIT=1, CHALLENGE_RATE_BURST=2)
    gateway = app.extensions["wsgate"]
    assert not gateway.challenges.in_one_step
    gateway.users.add(USERNAME)
    ws = client_of(app)
    tokens = [ws.call("getchallenge", "GET", username=USERNAME)["result"]["token"] for _ in "ab"]
    record = real_redis.hgetall(gateway.keys.user(USERNAME))
    assert sorted(field[2:] for field in record if field.startswith("t:")) == sorted(tokens)
    address_key = gateway.keys.challenges_of_address("127.0.0.1")
    tracked = real_redis.zrange(address_key, 0, -1)
    bucket = real_redis.hgetall(gateway.keys.challenge_rate("127.0.0.1"))
    for name in (USERNAME, "nobody"):
        assert error_code(ws.call("getchallenge", "GET", username=name)) == "TOO_MANY_REQUESTS"
    assert real_redis.hgetall(gateway.keys.user(USERNAME)) == record
    assert real_redis.zrange(address_key, 0, -1) == tracked
    assert real_redis.hgetall(gateway.keys.challenge_rate("127.0.0.1")) == bucket
    assert not real_redis.exists(gateway.keys.decoy_challenges("nobody"))

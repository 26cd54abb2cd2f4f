"""The gateway behind Redis Sentinel: it finds the master through the sentinel, follows a failover
under traffic without a restart, and what the failover loses is measured (``pytest -s`` prints the
figures)."""

from __future__ import annotations

import json
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from tests.conftest import TEST_SETTINGS
from tests.integration.conftest import USERNAME, client_of, error_code
from tests.integration.test_linked_sessions_race import (
    CHEAP_HASHER,
    PASSWORD,
    Api,
    Browser,
    FlaskTransport,
)
from tests.sentinel.conftest import (
    MASTER_NAME,
    NO_LIMITS,
    SentinelSetup,
    start_sentinel_setup,
)
from tests.wsclient import proof
from webservice.standalone import create_app
from webservice.standalone.redis_server import free_port
from webservice.store.client import MasterFollowingPool, sentinel_addresses
from webservice.store.tokens import SessionId

pytestmark = pytest.mark.sentinel

#: The gateway re-asks the sentinel where the master is this often (REDIS_SENTINEL_CHECK_INTERVAL).
CHECK_INTERVAL = 0.5
#: The sentinel must name the new master within this after SENTINEL FAILOVER.
SWITCH_BOUND = 10.0
#: After the sentinel names the new master, the gateway must have moved within the check interval;
#: this leaves room for a request in flight and a slow machine.
SETTLE_MARGIN = 1.0
#: Error codes a request may get while the master changes. SERVICE_UNAVAILABLE (and the web UI's
#: 503 page) is the outage itself; the others are what losing data looks like from outside (a
#: session, or a challenge, that the new master never received: a login whose token the new
#: master does not know answers as a wrong proof, extendsession from a lost web login as a
#: browser that is not logged in, and a login form whose page's web session was lost, with the
#: form's CSRF token in it, is refused with HTTP 400).
SWITCH_CODES = {
    "SERVICE_UNAVAILABLE", "HTTP 503",
    "AUTHENTICATION_REQUIRED", "INVALID_AUTH_TOKEN", "INVALID_USER_CREDENTIALS",
    "AUTHENTICATION_FAILURE", "HTTP 400",
}  # fmt: skip
#: How the master goes: a failover the sentinel is told to make while the master is healthy, or
#: the master's process killed (the sentinel fails over once it has been silent DOWN_AFTER_MS).
FAILOVERS = ["SENTINEL FAILOVER", "master killed"]


def sentinel_app(settings: dict[str, Any], **extra: Any) -> Flask:
    app = create_app({**TEST_SETTINGS, **NO_LIMITS, **settings, **extra})
    app.extensions["wsgate"].users.hasher = CHEAP_HASHER
    return app


def family_key(app: Flask, session_name: str) -> str:
    parsed = SessionId.parse(session_name)
    assert parsed is not None, session_name
    return app.extensions["wsgate"].keys.family(parsed.family_id)


def test_the_gateway_finds_the_master_through_the_sentinel(sentinel_setup: SentinelSetup):
    app = sentinel_app(sentinel_setup.settings)
    gateway = app.extensions["wsgate"]
    # Both of the app's clients go through the sentinel: the gateway's and the web sessions'.
    for client in (gateway.redis, app.session_interface.client):
        assert isinstance(client.connection_pool, MasterFollowingPool)
    user = gateway.users.add(USERNAME, PASSWORD)

    api = client_of(app)
    assert api.login(USERNAME, user.access_key)["success"]
    assert api.authed("listtypes")["success"]
    browser = Browser(FlaskTransport(app))
    sid = browser.log_in(USERNAME)
    linked = browser.extend("token")
    assert linked["success"], linked

    # Everything was written to the master the sentinel names, and replicated.
    master = sentinel_setup.data_client(sentinel_setup.master, decode_responses=True)
    replica = sentinel_setup.data_client(sentinel_setup.replica, decode_responses=True)
    assert sentinel_setup.master_port() == sentinel_setup.master.port
    keys = [
        family_key(app, api.session_name),
        family_key(app, linked["result"]["sessionName"]),
        app.session_interface._get_store_id(sid),
    ]
    assert all(master.exists(key) for key in keys)
    master.wait(1, 2000)
    assert all(replica.exists(key) for key in keys)
    assert replica.info("replication")["role"] == "slave"

    browser.log_out()
    assert not Api(FlaskTransport(app, cookies=False)).works(linked["result"]["sessionName"])
    assert api.authed("logout")["success"]
    assert error_code(api.authed("listtypes")) == "AUTHENTICATION_REQUIRED"
    master.close()
    replica.close()


def test_the_sentinel_settings_come_from_the_environment(
    sentinel_setup: SentinelSetup, monkeypatch: pytest.MonkeyPatch
):
    """Configured as in production: WSGATE_* variables only, the sentinels as a JSON list."""
    settings = sentinel_setup.settings
    monkeypatch.setenv("WSGATE_REDIS_URL", settings["REDIS_URL"])
    monkeypatch.setenv("WSGATE_REDIS_SENTINELS", json.dumps(settings["REDIS_SENTINELS"]))
    monkeypatch.setenv("WSGATE_REDIS_SENTINEL_MASTER", MASTER_NAME)
    monkeypatch.setenv("WSGATE_REDIS_SENTINEL_PASSWORD", settings["REDIS_SENTINEL_PASSWORD"])
    app = create_app(TEST_SETTINGS)
    assert app.config["WSGATE_REDIS_SENTINELS"] == settings["REDIS_SENTINELS"]
    access_key = app.extensions["wsgate"].users.add(USERNAME).access_key
    ws = client_of(app)
    assert ws.login(USERNAME, access_key)["success"]
    assert ws.authed("listtypes")["success"]
    with sentinel_setup.data_client(sentinel_setup.master) as master:
        assert master.exists(family_key(app, ws.session_name))


def test_sentinel_addresses_are_read_as_lists_or_comma_separated():
    assert sentinel_addresses(["10.0.0.1:26379", " s2.internal:26380 "]) == [
        ("10.0.0.1", 26379), ("s2.internal", 26380),
    ]  # fmt: skip
    assert sentinel_addresses("a:1,[::1]:26379") == [("a", 1), ("::1", 26379)]
    for bad in (["no-port"], ["host:"], ":26379", ["host:port"]):
        with pytest.raises(ValueError):
            sentinel_addresses(bad)


@pytest.mark.parametrize(
    "fault",
    ["wrong sentinel password", "no sentinel listening", "unknown master name"],
)
def test_a_sentinel_that_cannot_name_the_master_answers_service_unavailable(
    sentinel_setup: SentinelSetup, fault: str
):
    settings = dict(sentinel_setup.settings)
    if fault == "wrong sentinel password":
        settings["REDIS_SENTINEL_PASSWORD"] = "not-the-password"
    elif fault == "no sentinel listening":
        settings["REDIS_SENTINELS"] = [f"127.0.0.1:{free_port()}"]
    else:
        settings["REDIS_SENTINEL_MASTER"] = "no-such-master"
    app = sentinel_app(settings)  # starts: nothing is asked until a request needs Redis
    ws = client_of(app)
    for call in (
        lambda: ws.call("getchallenge", "GET", username=USERNAME),
        lambda: ws.call("listtypes", sessionName="A" * 22 + "." + "B" * 43),
    ):
        began = time.monotonic()
        assert error_code(call()) == "SERVICE_UNAVAILABLE"
        assert time.monotonic() - began < 5
    # The web UI says so too, with its own page.
    app.config["TESTING"] = False
    page = app.test_client().get("/login")
    assert page.status_code == 503


# --- failover under traffic -----------------------------------------------------------------------


@dataclass
class Outcome:
    #: When the request was sent: whatever it wrote, it wrote after this.
    at: float
    what: str
    code: str | None
    #: The API session a login created, or the web session id a web login got.
    session: str | None = None
    #: When the answer came.
    answered: float = field(default_factory=time.monotonic)


@dataclass
class Traffic:
    """Threads that log in (API and web) and use their sessions until told to stop. Every answer
    must be an envelope (flask_transport checks) or, for the web UI, a page."""

    app: Flask
    access_key: str
    outcomes: list[Outcome] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def send(self, what: str, call: Callable[[], dict], session: str | None = None) -> dict:
        """Sends a request; records when, its error code, and the session it was about (the
        one it created, for a login)."""
        sent = time.monotonic()
        answer = call()
        if answer["success"] and isinstance(answer["result"], dict):
            session = answer["result"].get("sessionName", session)
        self.outcomes.append(Outcome(sent, what, error_code(answer), session))
        return answer

    def api(self) -> None:
        ws = client_of(self.app)
        rounds = 0
        while not self.stop.is_set():
            rounds += 1
            challenge = self.send(
                "getchallenge", partial(ws.call, "getchallenge", "GET", username=USERNAME)
            )
            if not challenge["success"]:
                continue
            key_proof = proof(challenge["result"]["token"], self.access_key)
            login = self.send(
                "login", partial(ws.call, "login", username=USERNAME, accessKey=key_proof)
            )
            if not login["success"]:
                continue
            ws.session_name = login["result"]["sessionName"]
            self.send("listtypes", partial(ws.authed, "listtypes"), ws.session_name)
            if rounds % 3 == 0:
                self.send("logout", partial(ws.authed, "logout"), ws.session_name)
            time.sleep(0.002)

    def web(self) -> None:
        while not self.stop.is_set():
            transport = FlaskTransport(self.app)
            browser = Browser(transport)
            sent = time.monotonic()
            page = browser.get("/login")
            if page.status != 200:
                self.outcomes.append(Outcome(sent, "web login page", f"HTTP {page.status}"))
                continue
            sent = time.monotonic()
            reply = transport.request(
                "POST", "/login",
                data={"csrf_token": browser.csrf or "", "username": USERNAME, "password": PASSWORD},
            )  # fmt: skip
            if (reply.status, reply.location) != (302, "/"):
                self.outcomes.append(Outcome(sent, "web login", f"HTTP {reply.status}"))
                continue
            self.outcomes.append(Outcome(sent, "web login", None, browser.sid))
            self.send("extendsession", partial(browser.extend, "token"))
            time.sleep(0.01)

    def run(self, work: Callable[[], None]) -> threading.Thread:
        def guarded() -> None:
            try:
                work()
            except BaseException:  # noqa: BLE001  (an answer that is not an envelope, a 500 page)
                self.failures.append(traceback.format_exc())

        thread = threading.Thread(target=guarded)
        thread.start()
        return thread


@dataclass
class Figures:
    how: str
    switch_seconds: float
    requests: int
    errors: Counter
    error_span: tuple[float, float] | None
    created: dict[str, int]
    lost: dict[str, int]
    lost_span: tuple[float, float] | None
    logouts_undone: int
    lost_web: int
    web_logins: int

    def print(self) -> None:
        print()
        print(f"Sentinel failover under traffic: {self.how} (times from then)")
        print(f"  the sentinel named the new master after      {self.switch_seconds:.2f} s")
        print(f"  requests answered                             {self.requests}")
        for (what, code), count in sorted(self.errors.items()):
            print(f"  errors: {what:<14} {code:<26} {count:>6}")
        if self.error_span:
            low, high = self.error_span
            print(f"  errors were answered to requests sent between {low:+.2f} s and {high:+.2f} s")
        for phase, count in self.created.items():
            print(f"  API sessions created {phase:<25} {count:>6}, lost {self.lost[phase]}")
        if self.lost_span:
            low, high = self.lost_span
            print(f"  lost sessions were created between           {low:+.2f} s and {high:+.2f} s")
        print(f"  logouts acknowledged, then undone             {self.logouts_undone}")
        print(f"  web logins {self.web_logins}, of which lost               {self.lost_web}")


@pytest.mark.parametrize("how", FAILOVERS)
def test_failover_under_traffic_is_followed_without_a_restart(tmp_path: Path, how: str):
    """Two API threads (login, listtypes, every third session logged out) and a web-UI thread
    (login, extendsession) on one app instance, while the master changes. Afterwards the new
    master is asked which of the sessions the clients were given it knows."""
    setup = start_sentinel_setup(tmp_path)
    try:
        figures = run_failover(setup, how)
    finally:
        setup.stop()
    figures.print()


def run_failover(setup: SentinelSetup, how: str) -> Figures:
    # TESTING off: a failure outside a view becomes the page a user would get, not an exception
    # raised into the test client.
    app = sentinel_app(
        setup.settings, REDIS_SENTINEL_CHECK_INTERVAL=CHECK_INTERVAL, TESTING=False
    )
    access_key = app.extensions["wsgate"].users.add(USERNAME, PASSWORD).access_key
    old_port, new_port = setup.master.port, setup.replica.port
    traffic = Traffic(app, access_key or "")
    threads = [traffic.run(traffic.api), traffic.run(traffic.api), traffic.run(traffic.web)]
    try:
        time.sleep(1.0)
        sentinel = setup.sentinel_client()
        failover_at = time.monotonic()
        if how == "SENTINEL FAILOVER":
            assert sentinel.execute_command("SENTINEL", "FAILOVER", MASTER_NAME)
        else:
            assert setup.master.process is not None
            setup.master.process.kill()
        while setup.master_port() != new_port:
            assert time.monotonic() - failover_at < SWITCH_BOUND, "the sentinel did not fail over"
            time.sleep(0.01)
        switched_at = time.monotonic()
        sentinel.close()
        settled_at = switched_at + CHECK_INTERVAL + SETTLE_MARGIN
        time.sleep(settled_at + 1.0 - time.monotonic())
    finally:
        traffic.stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert not traffic.failures, traffic.failures[:3]
    assert setup.master_port() == new_port != old_port

    outcomes = sorted(traffic.outcomes, key=lambda outcome: outcome.at)
    new_master = setup.data_client(setup.replica, decode_responses=True)

    def on_new_master(key: str) -> bool:
        return bool(new_master.exists(key))

    def phase(at: float) -> str:
        if at < failover_at:
            return "before the failover"
        return "during the switch" if at < settled_at else "after it settled"

    # Every answer was an envelope or a page (the threads checked); only requests in flight
    # between the failover and the gateway's move failed, and only as a failover can make them.
    errors = Counter((o.what, o.code) for o in outcomes if o.code)
    assert {code for _, code in errors} <= SWITCH_CODES, errors
    outside = [o for o in outcomes if o.code and (o.answered < failover_at or o.at >= settled_at)]
    assert not outside, outside[:5]
    assert [o for o in outcomes if o.at >= settled_at and not o.code], "no traffic after the switch"

    logged_out = {o.session for o in outcomes if o.what == "logout" and o.code is None}
    created = {name: 0 for name in ("before the failover", "during the switch", "after it settled")}
    lost = dict.fromkeys(created, 0)
    lost_at = []
    for outcome in outcomes:
        if outcome.what != "login" or outcome.code or outcome.session is None:
            continue
        created[phase(outcome.at)] += 1
        if outcome.session not in logged_out and not on_new_master(family_key(app, outcome.session)):
            lost[phase(outcome.at)] += 1
            lost_at.append(outcome.at - failover_at)
    undone = sum(on_new_master(family_key(app, session)) for session in logged_out if session)
    web = [o for o in outcomes if o.what == "web login" and o.code is None and o.session]
    interface = app.session_interface
    lost_web = sum(not on_new_master(interface._get_store_id(o.session)) for o in web)
    lost_web_after = sum(
        not on_new_master(interface._get_store_id(o.session)) for o in web if o.at >= settled_at
    )
    new_master.close()

    figures = Figures(
        how=how,
        switch_seconds=switched_at - failover_at,
        requests=len(outcomes),
        errors=errors,
        error_span=_span([o.at - failover_at for o in outcomes if o.code]),
        created=created,
        lost=lost,
        lost_span=_span(lost_at),
        logouts_undone=undone,
        lost_web=lost_web,
        web_logins=len(web),
    )
    # Nothing written before the failover was lost, nor anything after the gateway moved.
    assert lost["before the failover"] == 0, figures
    assert lost["after it settled"] == 0 and lost_web_after == 0, figures
    assert created["after it settled"] > 0, figures

    # The same app instance, not restarted, works on the new master; so does its web UI.
    ws = client_of(app)
    assert ws.login(USERNAME, access_key or "")["success"]
    assert ws.authed("listtypes")["success"]
    browser = Browser(FlaskTransport(app))
    sid = browser.log_in(USERNAME)
    assert browser.extend("token")["success"]
    with setup.data_client(setup.replica, decode_responses=True) as check:
        assert check.exists(family_key(app, ws.session_name))
        assert check.exists(interface._get_store_id(sid))
    return figures


def _span(times: list[float]) -> tuple[float, float] | None:
    return (min(times), max(times)) if times else None

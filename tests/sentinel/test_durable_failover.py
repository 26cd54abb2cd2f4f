"""Acknowledged logouts survive failovers with REDIS_WAIT_REPLICAS = 1; with 0 some come back.

A master, its replica and a sentinel on loopback; one gateway app, not restarted, under a steady
stream of API logins and logouts and web logins (with a linked API session) and logouts. The
master changes again and again, alternately by ``SENTINEL FAILOVER`` of a healthy master (which
goes on accepting writes until it is told to replicate the new one) and by ``kill -9`` of the
master followed by the failover (the killed one restarted afterwards as the new master's replica,
as an operator would). Afterwards every logout
the gateway acknowledged is tried: with N = 1 none of their sessions works again; with N = 0 the
count is printed beside it (``pytest -s``), with the logouts' latency.

``WSGATE_TEST_FAILOVERS`` (default 5) sets the number of failovers per setting, for longer runs.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
import redis
from flask import Flask

from tests.conftest import TEST_SETTINGS
from tests.integration.conftest import USERNAME, client_of, error_code
from tests.integration.test_linked_sessions_race import (
    CHEAP_HASHER,
    PASSWORD,
    Browser,
    FlaskTransport,
)
from tests.sentinel.conftest import MASTER_NAME, NO_LIMITS, SentinelSetup, start_sentinel_setup
from tests.wsclient import proof
from webservice.standalone import create_app
from webservice.standalone.redis_server import RedisServer

pytestmark = pytest.mark.sentinel

FAILOVERS = int(os.environ.get("WSGATE_TEST_FAILOVERS", "5"))
#: Each API client logs out the session it logged in this many rounds earlier, so that logouts
#: meet sessions that the replica has had for a while.
POOL = 4
#: Traffic runs this long before each failover.
STEADY_SECONDS = 1.0
#: Bounds: the sentinel names the new master, the replica is back in sync and known.
SWITCH_BOUND = 15.0
READY_BOUND = 20.0
#: What a request may be answered while the master changes (an envelope or a page, always).
SWITCH_CODES = {
    "SERVICE_UNAVAILABLE", "AUTHENTICATION_REQUIRED", "INVALID_AUTH_TOKEN",
    "INVALID_USER_CREDENTIALS", "HTTP 503", "HTTP 400", "HTTP 401",
}  # fmt: skip


@pytest.fixture(scope="module")
def sentinel_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelSetup]:
    setup = start_sentinel_setup(tmp_path_factory.mktemp("durable-failover"))
    try:
        yield setup
    finally:
        setup.stop()


@dataclass
class Logout:
    """A logout the gateway acknowledged, and the sessions it ended."""

    via: str
    sent: float
    seconds: float
    #: API session ids that must not work again (the API session; a web login's linked one).
    api_sessions: list[str]
    #: The web session cookie that must not be logged in again.
    cookie: str | None = None


@dataclass
class Traffic:
    app: Flask
    access_key: str
    logouts: list[Logout] = field(default_factory=list)
    unconfirmed: int = 0
    codes: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def note(self, code: str | None) -> None:
        if code is not None:
            self.codes[code] = self.codes.get(code, 0) + 1

    def api(self) -> None:
        ws = client_of(self.app)
        live: deque[str] = deque()
        while not self.stop.is_set():
            challenge = ws.call("getchallenge", "GET", username=USERNAME)
            self.note(error_code(challenge))
            if challenge["success"]:
                key_proof = proof(challenge["result"]["token"], self.access_key)
                login = ws.call("login", username=USERNAME, accessKey=key_proof)
                self.note(error_code(login))
                if login["success"]:
                    live.append(login["result"]["sessionName"])
            if len(live) > POOL:
                session = live.popleft()
                sent = time.monotonic()
                answer = ws.call("logout", sessionName=session)
                took = time.monotonic() - sent
                code = error_code(answer)
                self.note(code)
                if code is None:
                    self.logouts.append(Logout("api", sent, took, [session]))
                elif code == "SERVICE_UNAVAILABLE":
                    self.unconfirmed += answer["error"]["message"].startswith("Logout")
                    live.appendleft(session)  # retried on the next round
            time.sleep(0.002)

    def web(self) -> None:
        while not self.stop.is_set():
            transport = FlaskTransport(self.app)
            browser = Browser(transport)
            page = browser.get("/login")
            if page.status != 200:
                self.note(f"HTTP {page.status}")
                continue
            reply = transport.request(
                "POST", "/login",
                data={"csrf_token": browser.csrf or "", "username": USERNAME, "password": PASSWORD},
            )  # fmt: skip
            if (reply.status, reply.location) != (302, "/"):
                self.note(f"HTTP {reply.status}")
                continue
            extended = browser.extend("token")
            self.note(error_code(extended))
            linked = [extended["result"]["sessionName"]] if extended["success"] else []
            cookie = browser.sid
            for _ in range(20):  # a logout that is not confirmed is retried
                sent = time.monotonic()
                reply = transport.request("POST", "/logout", data={"csrf_token": browser.csrf or ""})
                took = time.monotonic() - sent
                if (reply.status, reply.location) == (302, "/login"):
                    self.logouts.append(Logout("web", sent, took, linked, cookie))
                    break
                self.note(f"HTTP {reply.status}")
                self.unconfirmed += "Logout not confirmed" in reply.text
                time.sleep(0.1)
            time.sleep(0.01)

    def run(self, work: Callable[[], None]) -> threading.Thread:
        def guarded() -> None:
            try:
                work()
            except BaseException:  # noqa: BLE001  (an answer that is not an envelope, a 500)
                self.failures.append(traceback.format_exc())

        thread = threading.Thread(target=guarded)
        thread.start()
        return thread


class Failovers:
    """Changes the master, and brings the old one back as the new master's replica."""

    def __init__(self, setup: SentinelSetup) -> None:
        self.setup = setup
        self.servers: dict[int, RedisServer] = {
            setup.master.port: setup.master,
            setup.replica.port: setup.replica,
        }
        #: (from, until) of every failover: the command sent, and the pair ready again.
        self.windows: list[tuple[float, float]] = []

    def once(self, kill: bool) -> None:
        old = self.setup.master_port()
        (new,) = [port for port in self.servers if port != old]
        began = time.monotonic()
        sentinel = self.setup.sentinel_client()
        if kill:
            process = self.servers[old].process
            assert process is not None
            process.kill()
            process.wait()
        self._fail_over(sentinel, began)
        # Named by the sentinel, and the failover over (the sentinel names the promoted replica
        # before it has switched its own record of the master).
        while self.setup.master_port() != new or not self._switched(sentinel, new):
            assert time.monotonic() - began < SWITCH_BOUND, "the sentinel did not fail over"
            time.sleep(0.02)
        sentinel.close()
        # The old master comes back as the new one's replica (restarted, if it was killed).
        server = self.servers[old]
        if kill:
            args = server.extra_args
            if "--replicaof" in args:
                del args[args.index("--replicaof") : args.index("--replicaof") + 3]
            args += ["--replicaof", "127.0.0.1", str(new)]
            server.start()
        else:
            with self.setup.data_client(server) as client:
                client.replicaof("127.0.0.1", new)
        self._wait_ready(new, began)
        self.windows.append((began, time.monotonic()))

    @staticmethod
    def _fail_over(sentinel: redis.Redis, began: float) -> None:
        """``SENTINEL FAILOVER``, repeated until the sentinel takes it (it refuses while it does
        not yet see the replica as fit). After a kill too: the sentinel's own failover would wait
        twice its failover timeout after the previous one."""
        while True:
            try:
                assert sentinel.execute_command("SENTINEL", "FAILOVER", MASTER_NAME)
                return
            except redis.ResponseError as refused:
                if "INPROG" in str(refused):
                    return
                assert time.monotonic() - began < SWITCH_BOUND, f"no failover: {refused}"
                time.sleep(0.05)

    @staticmethod
    def _switched(sentinel: redis.Redis, new: int) -> bool:
        master = sentinel.sentinel_master(MASTER_NAME)
        return int(master["port"]) == new and "failover_in_progress" not in master["flags"]

    def _wait_ready(self, master_port: int, began: float) -> None:
        with self.setup.data_client(self.servers[master_port], decode_responses=True) as master:
            while True:
                try:
                    master.set("test:synced", "1")  # WAIT confirms this connection's writes
                    if master.wait(1, 100) == 1:
                        return
                except redis.RedisError:
                    pass
                assert time.monotonic() - began < READY_BOUND, "the replica did not sync"
                time.sleep(0.05)

@dataclass
class Figures:
    replicas: int
    failovers: int
    logouts: dict[str, int]
    unconfirmed: int
    resurrected: int
    latency_ms: dict[str, tuple[float, float]]
    codes: dict[str, int]
    #: How long each failover took, from the command (or the kill) to the pair ready again.
    windows: list[float]

    def print(self) -> None:
        print()
        print(f"REDIS_WAIT_REPLICAS={self.replicas}: {self.failovers} failovers under traffic")
        print(f"  logouts acknowledged: {self.logouts}; answered 'not confirmed': {self.unconfirmed}")
        print(f"  acknowledged logouts whose session works afterwards: {self.resurrected}")
        for what, (p50, p99) in self.latency_ms.items():
            print(f"  logout latency, {what:<34} p50 {p50:6.2f} ms  p99 {p99:7.2f} ms")
        print(f"  error answers: {dict(sorted(self.codes.items()))}")
        print(f"  failovers took (s): {' '.join(f'{w:.2f}' for w in self.windows)}")


def percentiles(seconds: list[float]) -> tuple[float, float]:
    if len(seconds) < 2:
        return (seconds[0] * 1000, seconds[0] * 1000) if seconds else (0.0, 0.0)
    cuts = statistics.quantiles(seconds, n=100, method="inclusive")
    return cuts[49] * 1000, cuts[98] * 1000


@pytest.mark.parametrize("replicas", [1, 0])
def test_acknowledged_logouts_survive_failovers(sentinel_pair: SentinelSetup, replicas: int):
    setup = sentinel_pair
    failovers = Failovers(setup)
    with setup.data_client(failovers.servers[setup.master_port()]) as master:
        master.flushall()
    app = create_app(
        {
            **TEST_SETTINGS,
            **NO_LIMITS,
            **setup.settings,
            "REDIS_WAIT_REPLICAS": replicas,
            "TESTING": False,
        }
    )
    gateway = app.extensions["wsgate"]
    gateway.users.hasher = CHEAP_HASHER
    access_key = gateway.users.add(USERNAME, PASSWORD).access_key or ""
    traffic = Traffic(app, access_key)
    threads = [traffic.run(traffic.api), traffic.run(traffic.api), traffic.run(traffic.web)]
    try:
        for round_ in range(FAILOVERS):
            time.sleep(STEADY_SECONDS)
            failovers.once(kill=round_ % 2 == 1)
        time.sleep(STEADY_SECONDS)
    finally:
        traffic.stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert not traffic.failures, traffic.failures[:3]
    # Without REDIS_WAIT_REPLICAS a web login made just before a failover may be lost with the
    # old master: its extendsession is then refused as for a login that ended.
    allowed = SWITCH_CODES if replicas else SWITCH_CODES | {"AUTHENTICATION_FAILURE"}
    assert set(traffic.codes) <= allowed, traffic.codes

    resurrected = [logout for logout in traffic.logouts if works_again(app, logout)]

    def away_from_failovers(logout: Logout) -> bool:
        return not any(start - 0.5 <= logout.sent <= end + 0.5 for start, end in failovers.windows)

    def latency(via: str, steady: bool) -> tuple[float, float]:
        return percentiles(
            [
                logout.seconds
                for logout in traffic.logouts
                if logout.via == via and (not steady or away_from_failovers(logout))
            ]
        )

    figures = Figures(
        replicas=replicas,
        failovers=FAILOVERS,
        logouts={
            via: sum(logout.via == via for logout in traffic.logouts) for via in ("api", "web")
        },
        unconfirmed=traffic.unconfirmed,
        resurrected=len(resurrected),
        latency_ms={
            "API, all": latency("api", False),
            "API, away from failovers": latency("api", True),
            "web, all": latency("web", False),
            "web, away from failovers": latency("web", True),
        },
        codes=traffic.codes,
        windows=[end - start for start, end in failovers.windows],
    )
    figures.print()
    assert figures.logouts["api"] > 0 and figures.logouts["web"] > 0, figures
    if replicas:
        assert not resurrected, resurrected[:5]


def works_again(app: Flask, logout: Logout) -> bool:
    """Whether any session the logout ended works now (on the last master)."""
    ws = client_of(app)
    for session in logout.api_sessions:
        answer = ws.call("listtypes", "GET", sessionName=session)
        if answer["success"]:
            return True
        assert error_code(answer) == "AUTHENTICATION_REQUIRED", answer
    if logout.cookie is None:
        return False
    transport = FlaskTransport(app)
    transport.set_cookie(logout.cookie)
    reply = transport.request("GET", "/")
    assert reply.status in (200, 302), reply.status
    return reply.status == 200

"""Faults under traffic, against real gunicorn (2 workers) and a real redis-server.

(a) Redis stops while threads log in and make authenticated calls: every request still gets the
    HTTP 200 envelope (SERVICE_UNAVAILABLE) within a bound, /readyz answers 503; when Redis comes
    back on the same port with its append-only file, the same gunicorn serves again, and every
    session made before the outage (or during the traffic before it) still works.
(b) A worker is killed with SIGKILL under traffic: no session is lost, gunicorn starts another
    worker, requests after that succeed, and the metrics keep the dead worker's counts.

``pytest tests/e2e/test_faults.py -s`` prints the figures.
"""

from __future__ import annotations

import collections
import os
import random
import signal
import threading
import time
from dataclasses import dataclass, field

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import TEST_SETTINGS
from tests.e2e import procfs
from tests.e2e.conftest import Gateway
from tests.e2e.wire import proof
from tests.gunicorn_process import start_gunicorn, stop_gunicorn
from webservice.standalone import create_app
from webservice.standalone.redis_server import RedisServer, free_port

pytestmark = pytest.mark.e2e

#: Every request must be answered within this while Redis is down. The gateway's own bound is
#: about twice REDIS_CONNECT_TIMEOUT (1 s) for an unreachable host; a stopped server on this host
#: refuses at once. The rest is slack for a busy two-core machine.
OUTAGE_BOUND_SECONDS = 3.0
THREADS = 4
USERS = 4
SESSIONS_BEFORE = 20
OK = "ok"
HTTP_TIMEOUT = 15


@dataclass
class Outcome:
    operation: str
    started: float
    ended: float
    #: "ok", the envelope's error code, or what went wrong below it (HTTP_<status>, an exception).
    code: str

    @property
    def seconds(self) -> float:
        return self.ended - self.started

    @property
    def enveloped(self) -> bool:
        """Whether the answer was the HTTP 200 JSON envelope (success or an error code)."""
        return self.code == OK or (self.code.isupper() and not self.code.startswith("HTTP_"))


@dataclass
class Traffic:
    """Threads that log in (getchallenge + login) and call listtypes with the sessions they know,
    each request on a new connection, until stopped."""

    base_url: str
    users: list[tuple[str, str]]
    sessions: list[str]
    outcomes: list[Outcome] = field(default_factory=list)
    #: Sessions whose login was answered ok, with the time of the answer.
    created: list[tuple[float, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Traffic:
        for index in range(THREADS):
            thread = threading.Thread(target=self._run, args=(index,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)
        assert not any(thread.is_alive() for thread in self._threads), "a traffic thread hung"

    def _call(self, operation: str, method: str, params: dict) -> tuple[Outcome, dict | None]:
        started = time.monotonic()
        body = None
        try:
            response = requests.request(
                method,
                f"{self.base_url}/webservice.php",
                params=params if method == "GET" else None,
                data=params if method == "POST" else None,
                headers={"Connection": "close"},
                timeout=HTTP_TIMEOUT,
            )
            if response.status_code != 200 or not response.headers.get(
                "Content-Type", ""
            ).startswith("application/json"):
                result = f"HTTP_{response.status_code}"
            else:
                body = response.json()
                result = OK if body["success"] else body["error"]["code"]
        except requests.RequestException as error:
            result = type(error).__name__
        outcome = Outcome(operation, started, time.monotonic(), result)
        with self._lock:
            self.outcomes.append(outcome)
        return outcome, body

    def _run(self, index: int) -> None:
        chance = random.Random(index)
        username, access_key = self.users[index % len(self.users)]
        while not self._stop.is_set():
            if chance.random() < 0.4:
                outcome, body = self._call(
                    "getchallenge", "GET", {"operation": "getchallenge", "username": username}
                )
                if outcome.code == OK:
                    token = body["result"]["token"]
                    login = {
                        "operation": "login",
                        "username": username,
                        "accessKey": proof(token, access_key),
                    }
                    outcome, body = self._call("login", "POST", login)
                    if outcome.code == OK:
                        with self._lock:
                            self.created.append((outcome.ended, body["result"]["sessionName"]))
            else:
                with self._lock:
                    known = self.sessions + [name for _when, name in self.created]
                session = chance.choice(known)
                self._call("listtypes", "GET", {"operation": "listtypes", "sessionName": session})
            time.sleep(0.005)

    def between(self, start: float, end: float) -> list[Outcome]:
        """The requests sent and answered within [start, end]."""
        return [o for o in self.outcomes if o.started >= start and o.ended <= end]


def figures(label: str, outcomes: list[Outcome]) -> str:
    codes = collections.Counter(o.code for o in outcomes)
    worst = max((o.seconds for o in outcomes), default=0.0)
    return f"{label}: {len(outcomes)} requests, max {worst * 1000:.0f} ms, {dict(codes)}"


def make_users(redis_url: str) -> list[tuple[str, str]]:
    app = create_app({**TEST_SETTINGS, "REDIS_URL": redis_url})
    users = app.extensions["wsgate"].users
    return [(f"fault{i}", users.add(f"fault{i}").access_key) for i in range(USERS)]


def log_in(base_url: str, username: str, access_key: str) -> str:
    challenge = requests.get(
        f"{base_url}/webservice.php",
        params={"operation": "getchallenge", "username": username},
        timeout=HTTP_TIMEOUT,
    ).json()
    token = challenge["result"]["token"]
    login = requests.post(
        f"{base_url}/webservice.php",
        data={"operation": "login", "username": username, "accessKey": proof(token, access_key)},
        timeout=HTTP_TIMEOUT,
    ).json()
    assert login["success"], login
    return login["result"]["sessionName"]


def dead_sessions(base_url: str, sessions: list[str]) -> list[tuple[str, dict]]:
    """The sessions listtypes refuses (with its answer)."""
    dead = []
    for session in sessions:
        answer = requests.get(
            f"{base_url}/webservice.php",
            params={"operation": "listtypes", "sessionName": session},
            timeout=HTTP_TIMEOUT,
        ).json()
        if not answer["success"]:
            dead.append((session, answer))
    return dead


def readyz(base_url: str) -> tuple[int, dict, float]:
    started = time.monotonic()
    response = requests.get(f"{base_url}/readyz", timeout=HTTP_TIMEOUT)
    return response.status_code, response.json(), time.monotonic() - started


def requests_counted(base_url: str) -> float:
    text = requests.get(f"{base_url}/metrics", timeout=HTTP_TIMEOUT).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "wsgate_requests_total"
    )


def boots(log_path) -> int:
    return log_path.read_text().count("Booting worker with pid")


# --- (a) Redis stops and comes back ------------------------------------------------------------


def test_redis_outage_under_traffic(tmp_path):
    port = free_port()
    redis_dir = tmp_path / "redis"
    server = RedisServer(redis_dir, port, persistent=True).start()
    log_path = tmp_path / "gunicorn.log"
    process, base, _env = start_gunicorn(
        server.url, log_path, extra_env={"WSGATE_CHALLENGE_RATE_LIMIT": "0"}
    )
    try:
        users = make_users(server.url)
        before = [log_in(base, *users[i % USERS]) for i in range(SESSIONS_BEFORE)]
        workers = procfs.children(process.pid)
        booted = boots(log_path)
        traffic = Traffic(base, users, list(before)).start()
        time.sleep(1.5)

        stopping = time.monotonic()
        server.stop()
        stopped = time.monotonic()
        probes = []
        for _ in range(3):
            time.sleep(0.8)
            probes.append(readyz(base))
        time.sleep(0.6)

        restarting = time.monotonic()
        server = RedisServer(redis_dir, port, persistent=True).start()
        restarted = time.monotonic()
        deadline = restarted + 10
        while readyz(base)[0] != 200:
            assert time.monotonic() < deadline, "the gateway did not become ready again"
            time.sleep(0.05)
        ready_again = time.monotonic()
        time.sleep(2.0)
        traffic.stop()
        ended = time.monotonic()

        outcomes = traffic.outcomes
        outage = traffic.between(stopped, restarting)
        after = traffic.between(restarted, ended)
        print()
        print(figures("before the stop", traffic.between(0, stopping)))
        print(figures("Redis down", outage))
        print(figures("across the stop and the restart", [
            o for o in outcomes
            if (o.started < stopped < o.ended) or (o.started < restarted and o.ended > restarting)
        ]))  # fmt: skip
        print(figures("Redis back", after))
        print(
            f"readyz while down: {[(status, body['status'], round(s * 1000)) for status, body, s in probes]}; "
            f"ready again {1000 * (ready_again - restarted):.0f} ms after the restart"
        )

        # Every request got the envelope, whatever happened to Redis.
        assert all(o.enveloped for o in outcomes), collections.Counter(o.code for o in outcomes)
        assert len(outage) >= 50, figures("Redis down", outage)
        assert {o.code for o in outage} == {"SERVICE_UNAVAILABLE"}
        worst = max(o.seconds for o in outage)
        assert worst < OUTAGE_BOUND_SECONDS, worst
        assert [(status, body["status"]) for status, body, _s in probes] == [
            (503, "unavailable")
        ] * 3
        assert max(s for _status, _body, s in probes) < 2.0

        # The same processes serve again, without a restart of gunicorn.
        assert process.poll() is None
        assert procfs.children(process.pid) == workers and boots(log_path) == booted
        assert len(after) >= 50 and {o.code for o in after} == {OK}, figures("Redis back", after)
        made_during = [name for _when, name in traffic.created]
        assert made_during, "no login succeeded during the traffic"
        assert dead_sessions(base, before + made_during) == []
        assert {o.code for o in traffic.between(0, stopping)} == {OK}
    finally:
        stop_gunicorn(process)
        server.stop()


# --- (b) a worker killed with SIGKILL ------------------------------------------------------------


def test_killing_a_worker_under_traffic(tmp_path):
    with RedisServer(tmp_path / "redis") as server:
        log_path = tmp_path / "gunicorn.log"
        process, base, env = start_gunicorn(
            server.url, log_path, extra_env={"WSGATE_CHALLENGE_RATE_LIMIT": "0"}
        )
        gateway = Gateway(base, server.url, env, log_path)
        try:
            users = make_users(server.url)
            before = [log_in(base, *users[i % USERS]) for i in range(SESSIONS_BEFORE)]
            traffic = Traffic(base, users, list(before)).start()
            time.sleep(1.5)

            workers = procfs.children(process.pid)
            assert len(workers) == 2
            victim = min(workers)
            counted_before_kill = requests_counted(base)
            killed = time.monotonic()
            os.kill(victim, signal.SIGKILL)
            deadline = killed + 30
            while True:
                now = procfs.children(process.pid)
                if victim not in now and len(now) == 2:
                    break
                assert time.monotonic() < deadline, "gunicorn did not replace the worker"
                time.sleep(0.01)
            replaced = time.monotonic()
            (newcomer,) = now - workers
            # The new worker answers (gunicorn's access log names the worker of each request).
            while newcomer not in gateway.worker_pids("operation="):
                assert time.monotonic() < deadline, "the new worker never answered"
                time.sleep(0.05)
            serving = time.monotonic()
            time.sleep(1.5)
            counted_after = requests_counted(base)
            traffic.stop()
            ended = time.monotonic()

            outcomes = traffic.outcomes
            failures = [o for o in outcomes if o.code not in (OK,)]
            after = traffic.between(replaced, ended)
            print()
            print(figures("all traffic", outcomes))
            print(figures("after the new worker was forked", after))
            print(
                f"killed worker {victim}: replaced by {newcomer} after "
                f"{1000 * (replaced - killed):.0f} ms, answering after {1000 * (serving - killed):.0f} ms; "
                f"failed requests: {[(o.operation, o.code, round(o.started - killed, 3)) for o in failures]}; "
                f"requests counted before the kill {counted_before_kill:.0f}, at the end {counted_after:.0f}"
            )

            # At most the requests the killed worker was answering are lost (a gevent worker
            # answers several at once: at most one per client thread), each under way when the
            # signal came.
            assert len(failures) <= THREADS, failures
            for failure in failures:
                assert failure.started <= killed <= failure.ended, failure
            assert len(after) >= 50 and {o.code for o in after} == {OK}
            # No session is lost: those made before the traffic and every one made during it.
            made_during = [name for _when, name in traffic.created]
            assert any(when > serving for when, _name in traffic.created)
            assert dead_sessions(base, before + made_during) == []
            # The dead worker's counts are still in the metrics.
            assert counted_after >= counted_before_kill + len(after)
        finally:
            stop_gunicorn(process)

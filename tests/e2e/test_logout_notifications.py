"""Logout notifications end to end: gunicorn over a real redis-server, real delivery processes
(``flask --app wsgi notifications deliver``), and a real receiver that verifies every logout
token against the gateway's JWKS, fetched over HTTP.

``pytest tests/e2e/test_logout_notifications.py -s`` prints the delivery figures.
"""

from __future__ import annotations

import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import Gateway
from tests.e2e.procfs import children
from tests.gunicorn_process import ROOT, start_gunicorn, stop_gunicorn
from tests.logout_receiver import LogoutReceiver, TokenVerifier
from tests.wsclient import WebServiceClient, http_transport
from webservice.standalone.redis_server import RedisServer, free_port

pytestmark = pytest.mark.e2e

AUDIENCE = "test-relying-party"
IDLE_TIMEOUT = 4
ABSOLUTE_TIMEOUT = 8
MAX_FAMILIES = 3
#: How long a dead delivery process's entries wait before another takes them over.
LEASE = 3


@dataclass
class Setup:
    gateway: Gateway
    receiver: LogoutReceiver
    verifier: TokenVerifier


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> Iterator[Setup]:
    workdir = tmp_path_factory.mktemp("notify")
    receiver = LogoutReceiver(free_port()).start()
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    extra_env = {
        "WSGATE_LOGOUT_RECEIVERS": json.dumps([{"url": receiver.url, "audience": AUDIENCE}]),
        "WSGATE_LOGOUT_ISSUER": base_url,
        "WSGATE_LOGOUT_RETRY_INITIAL": "0.2",
        "WSGATE_LOGOUT_RETRY_MAX": "2",
        "WSGATE_LOGOUT_DELIVERY_TIMEOUT": "2",
        "WSGATE_LOGOUT_DELIVERY_LEASE": str(LEASE),
        "WSGATE_SESSION_IDLE_TIMEOUT": str(IDLE_TIMEOUT),
        "WSGATE_SESSION_ABSOLUTE_TIMEOUT": str(ABSOLUTE_TIMEOUT),
        "WSGATE_MAX_FAMILIES_PER_USER": str(MAX_FAMILIES),
        "WSGATE_LOG_LEVEL": "WARNING",
    }
    with RedisServer(workdir / "redis") as redis_server:
        log_path = workdir / "gunicorn.log"
        process, base_url, env = start_gunicorn(
            redis_server.url, log_path, extra_env=extra_env, port=port
        )
        try:
            gateway = Gateway(base_url, redis_server.url, env, log_path)
            yield Setup(gateway, receiver, TokenVerifier(base_url, base_url, AUDIENCE))
        finally:
            stop_gunicorn(process)
            receiver.stop()


class Deliverers:
    """Delivery processes started by a test, stopped at its end."""

    def __init__(self, gateway: Gateway, log_dir) -> None:
        self.gateway = gateway
        self.log_dir = log_dir
        self.processes: list[subprocess.Popen] = []

    def start(self, name: str) -> subprocess.Popen:
        log = open(self.log_dir / f"deliver-{name}.log", "w")
        process = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "wsgi", "notifications", "deliver",
             "--consumer", name],
            cwd=ROOT, env=self.gateway.env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def deliverers(setup: Setup, tmp_path) -> Iterator[Deliverers]:
    started = Deliverers(setup.gateway, tmp_path)
    yield started
    started.stop_all()
    setup.receiver.mode = "ok"
    setup.receiver.release()


# --- helpers -------------------------------------------------------------------------------------


def add_user(gateway: Gateway, name: str) -> dict:
    done = gateway.flask("users", "add", name, "--password", "pw-" + name, "--json")
    return json.loads(done.stdout.strip().splitlines()[-1])


def api_login(gateway: Gateway, user: dict) -> tuple[WebServiceClient, str]:
    """A logged-in client and its family id (the ``sid`` its logout token must carry)."""
    client = WebServiceClient(http_transport(gateway.base_url))
    answer = client.login(user["username"], user["accessKey"])
    assert answer["success"], answer
    assert answer["result"]["userId"] == user["userId"]
    return client, client.session_name.partition(".")[0]


def handle_of(client: WebServiceClient) -> str:
    [current] = [view for view in client.authed("listsessions")["result"] if view["current"]]
    return current["handle"]


class Browser:
    """The standalone web UI, logged in over HTTP."""

    def __init__(self, gateway: Gateway, user: dict) -> None:
        self.gateway = gateway
        self.user = user
        self.http = requests.Session()

    def login(self) -> str:
        """Logs in; answers the web family's id."""
        page = self.http.get(self.gateway.base_url + "/login", timeout=10).text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        name = self.user["username"]
        answer = self.http.post(
            self.gateway.base_url + "/login",
            data={"username": name, "password": "pw-" + name, "csrf_token": token},
            timeout=10,
        )
        assert answer.url.rstrip("/") == self.gateway.base_url, answer.url
        return self.family()

    def family(self) -> str:
        page = self.http.get(self.gateway.base_url + "/sessions", timeout=10).text
        handles = re.findall(r'data-handle="([^":]+):', page)
        assert handles, page[:500]
        return handles[0]  # this browser's family is listed first

    def csrf(self) -> str:
        page = self.http.get(self.gateway.base_url + "/", timeout=10).text
        return re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)

    def extend(self) -> str:
        answer = self.http.post(
            self.gateway.base_url + "/webservice.php",
            data={"operation": "extendsession"},
            headers={"X-CSRFToken": self.csrf()},
            timeout=10,
        ).json()
        assert answer["success"], answer
        return answer["result"]["sessionName"]

    def logout(self) -> None:
        page = self.http.get(self.gateway.base_url + "/", timeout=10).text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        self.http.post(self.gateway.base_url + "/logout", data={"csrf_token": token}, timeout=10)


def tokens_for(setup: Setup, sids: set[str]) -> list[dict]:
    """The verified claims of every token received so far for these families."""
    claims = [setup.verifier.verify(received.token) for received in setup.receiver.tokens()]
    return [claim for claim in claims if claim["sid"] in sids]


def wait_for_tokens(setup: Setup, sids: set[str], timeout: float) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        got = tokens_for(setup, sids)
        if {claim["sid"] for claim in got} >= sids or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def metric(gateway: Gateway, name: str) -> float:
    text = requests.get(gateway.base_url + "/metrics", timeout=10).text
    match = re.search(rf"^{name} ([0-9.e+-]+)$", text, re.M)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))


# --- the tests -----------------------------------------------------------------------------------


def test_every_kind_of_ending_sends_one_verified_token_with_its_sid_and_sub(setup, deliverers):
    """Two delivery processes share the work; each ended family gets exactly one token."""
    gateway = setup.gateway
    deliverers.start("a")
    deliverers.start("b")
    expected: dict[str, tuple[str, str]] = {}  # sid -> (sub, what)

    def ended(sid: str, user: dict, what: str) -> None:
        assert sid not in expected
        expected[sid] = (user["userId"], what)

    # Timeouts take a few seconds: they run beside the others.
    timeouts: list[tuple[str, dict, str]] = []

    def idle_and_absolute() -> None:
        idle_user, busy_user = add_user(gateway, "kind-idle"), add_user(gateway, "kind-busy")
        idle, idle_sid = api_login(gateway, idle_user)
        busy, busy_sid = api_login(gateway, busy_user)
        started = time.monotonic()
        while time.monotonic() - started < ABSOLUTE_TIMEOUT + 0.5:
            time.sleep(1)
            busy.authed("listtypes")
        assert busy.authed("listtypes")["success"] is False  # absolute timeout
        assert idle.authed("listtypes")["success"] is False  # idle timeout
        timeouts.extend([(idle_sid, idle_user, "idle"), (busy_sid, busy_user, "absolute")])

    timer = threading.Thread(target=idle_and_absolute)
    timer.start()

    api = add_user(gateway, "kind-api")
    client, sid = api_login(gateway, api)
    assert client.authed("logout")["success"]
    ended(sid, api, "logout")

    asker, _ = api_login(gateway, api)
    target, target_sid = api_login(gateway, api)
    assert asker.authed("endsession", handle=handle_of(target))["result"]
    ended(target_sid, api, "endsession")

    rest = add_user(gateway, "kind-rest")
    bearer, rest_sid = api_login(gateway, rest)
    answer = requests.post(
        gateway.base_url + "/v1/auth/logout",
        headers={"Authorization": f"Bearer {bearer.session_name}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    ended(rest_sid, rest, "REST logout")

    everyone = add_user(gateway, "kind-all")
    first, first_sid = api_login(gateway, everyone)
    _, second_sid = api_login(gateway, everyone)
    assert first.authed("endallsessions")["result"] == {"ended": 2}
    ended(first_sid, everyone, "endallsessions")
    ended(second_sid, everyone, "endallsessions")

    web_user = add_user(gateway, "kind-web")
    browser = Browser(gateway, web_user)
    web_sid = browser.login()
    linked = browser.extend()
    assert linked.partition(".")[0] == web_sid
    relogin_sid = browser.login()  # a new login in the same browser ends the first
    ended(web_sid, web_user, "web_relogin")
    browser.logout()
    ended(relogin_sid, web_user, "web_logout")

    revoked_user = add_user(gateway, "kind-revoke")
    revoked, revoked_sid = api_login(gateway, revoked_user)
    gateway.flask("sessions", "revoke", handle_of(revoked))
    ended(revoked_sid, revoked_user, "revoke")
    for _ in range(2):
        _, sid = api_login(gateway, revoked_user)
        ended(sid, revoked_user, "revoke_user")
    gateway.flask("sessions", "revoke-user", "kind-revoke")

    disabled = add_user(gateway, "kind-disable")
    _, disabled_sid = api_login(gateway, disabled)
    gateway.flask("users", "disable", "kind-disable")
    ended(disabled_sid, disabled, "user_disabled")

    capped = add_user(gateway, "kind-cap")
    oldest_sid = api_login(gateway, capped)[1]
    for _ in range(MAX_FAMILIES):
        api_login(gateway, capped)
    ended(oldest_sid, capped, "family_cap")

    timer.join()
    for sid, user, what in timeouts:
        ended(sid, user, what)

    got = wait_for_tokens(setup, set(expected), timeout=20)
    time.sleep(1.5)  # room for a duplicate to show up
    got = tokens_for(setup, set(expected))
    counts = Counter(claim["sid"] for claim in got)
    missing = {expected[sid][1] for sid in expected if counts[sid] == 0}
    doubled = {expected[sid][1] for sid in expected if counts[sid] > 1}
    assert not missing, f"no token for: {missing}"
    assert not doubled, f"more than one token for: {doubled}"
    for claim in got:
        assert claim["sub"] == expected[claim["sid"]][0], claim
    assert len({claim["jti"] for claim in got}) == len(got)
    assert all(r.content_type == "application/x-www-form-urlencoded"
               for r in setup.receiver.tokens())  # fmt: skip
    listed = gateway.flask("notifications", "list").stdout
    assert not any(sid in listed for sid in expected), listed


def test_a_receiver_down_for_20_seconds_gets_everything_once_it_is_back(setup, deliverers):
    gateway = setup.gateway
    deliverers.start("outage")
    user = add_user(gateway, "outage")
    setup.receiver.stop()
    down_at = time.monotonic()
    sids = set()
    for _ in range(10):
        client, sid = api_login(gateway, user)
        assert client.authed("logout")["success"]
        sids.add(sid)
    time.sleep(max(0.0, 10 - (time.monotonic() - down_at)))
    queued_while_down = metric(gateway, "wsgate_logout_notifications_queued")
    oldest_while_down = metric(gateway, "wsgate_logout_notifications_oldest_age_seconds")
    assert queued_while_down >= 10
    assert oldest_while_down >= 8
    time.sleep(max(0.0, 20 - (time.monotonic() - down_at)))
    setup.receiver.start()
    back_at = time.monotonic()
    got = wait_for_tokens(setup, sids, timeout=15)
    all_in = time.monotonic() - back_at
    assert {claim["sid"] for claim in got} == sids
    # The receiver has them as soon as it answers; the outbox lets go once the answer is read.
    deadline = time.monotonic() + 5
    while metric(gateway, "wsgate_logout_notifications_queued") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert metric(gateway, "wsgate_logout_notifications_queued") == 0
    assert metric(gateway, "wsgate_logout_notifications_oldest_age_seconds") == 0
    assert metric(gateway, "wsgate_logout_notifications_failed_total") == 0
    print(
        f"\nreceiver down 20 s: {len(sids)} logouts queued ({queued_while_down:.0f} in the outbox,"
        f" oldest {oldest_while_down:.1f} s at 10 s); all delivered {all_in:.2f} s after it came"
        f" back (backoff capped at 2 s here)"
    )


def test_a_delivery_process_killed_mid_send_is_taken_over_by_another(setup, deliverers):
    gateway = setup.gateway
    receiver = setup.receiver
    receiver.mode = "hang"
    first = deliverers.start("doomed")
    user = add_user(gateway, "takeover")
    client, sid = api_login(gateway, user)
    arrivals = len(receiver.arrivals)
    assert client.authed("logout")["success"]
    deadline = time.monotonic() + 15
    while len(receiver.arrivals) == arrivals and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(receiver.arrivals) > arrivals, "the first process never sent"
    first.send_signal(signal.SIGKILL)  # mid-send: its POST is held open by the receiver
    first.wait()
    receiver.mode = "ok"
    receiver.release()
    killed_at = time.monotonic()
    deliverers.start("heir")
    got = wait_for_tokens(setup, {sid}, timeout=LEASE + 15)
    assert [claim["sid"] for claim in got] == [sid]
    assert got[0]["sub"] == user["userId"]
    print(f"\ntaken over and delivered {time.monotonic() - killed_at:.2f} s after the kill"
          f" (lease {LEASE} s)")  # fmt: skip


def test_logout_latency_is_the_same_with_the_receiver_hanging(setup, deliverers):
    """Also measures the time from a logout to the receiver's receipt of its token."""
    gateway = setup.gateway
    receiver = setup.receiver
    deliverers.start("latency")
    user = add_user(gateway, "latency")
    rounds = 60

    def logouts() -> tuple[list[float], dict[str, float]]:
        latencies, sent_at = [], {}
        for _ in range(rounds):
            client, sid = api_login(gateway, user)
            started = time.time()
            assert client.authed("logout")["success"]
            latencies.append(time.time() - started)
            sent_at[sid] = started
        return latencies, sent_at

    answering, sent_at = logouts()
    got = wait_for_tokens(setup, set(sent_at), timeout=20)
    assert {claim["sid"] for claim in got} == set(sent_at)
    received_at = {}
    for received in receiver.tokens():
        claims = setup.verifier.verify(received.token)
        received_at.setdefault(claims["sid"], received.at)
    delays = [received_at[sid] - sent_at[sid] for sid in sent_at]

    receiver.mode = "hang"
    hanging, _ = logouts()
    p50_ok, p50_hang = statistics.median(answering), statistics.median(hanging)
    p99_ok, p99_hang = percentile(answering, 0.99), percentile(hanging, 0.99)
    print(
        f"\nlogout latency, receiver answering: p50 {p50_ok * 1000:.1f} ms p99 {p99_ok * 1000:.1f} ms;"
        f" receiver hanging: p50 {p50_hang * 1000:.1f} ms p99 {p99_hang * 1000:.1f} ms"
        f"\nlogout to receipt: p50 {statistics.median(delays) * 1000:.1f} ms"
        f" p99 {percentile(delays, 0.99) * 1000:.1f} ms ({rounds} logouts, one delivery process)"
    )
    # The delivery process is apart from the logout: a hanging receiver changes nothing. The
    # bounds are generous (the machine is shared); a hang that leaked into the logout would
    # cost the delivery timeout, 2 s.
    assert p50_hang < p50_ok * 2 + 0.05
    assert max(hanging) < 1.5


def test_scripts_serve_runs_a_delivery_process_and_stops_it(tmp_path):
    """From scripts/serve with receivers set: a logout's token arrives, verified against the
    JWKS it serves; SIGTERM to serve alone (not its process group) stops the delivery process
    too."""
    receiver = LogoutReceiver(free_port()).start()
    http_port = free_port()
    base_url = f"http://127.0.0.1:{http_port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("WSGATE_")},
        "WSGATE_BIND": f"127.0.0.1:{http_port}",
        "WSGATE_REDIS_PORT": str(free_port()),
        "WSGATE_DATA_DIR": str(tmp_path / "data"),
        "WSGATE_WORKERS": "1",
        "WSGATE_LOGOUT_RECEIVERS": json.dumps([receiver.url]),
    }
    log_path = tmp_path / "serve.log"
    serve = subprocess.Popen(
        ["bash", "scripts/serve"], cwd=ROOT, env=env, stdout=open(log_path, "w"),
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while "ready:" not in log_path.read_text():
            assert serve.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        access_key = log_path.read_text().split("access key (API):", 1)[1].split()[0]
        client = WebServiceClient(http_transport(base_url))
        assert client.login("admin", access_key)["success"]
        assert client.authed("logout")["success"]
        [received] = receiver.wait_for(1, timeout=15)
        # The issuer defaults to the first of the loopback origins scripts/serve sets.
        claims = TokenVerifier(base_url, f"http://127.0.0.1:{http_port}", receiver.url).verify(
            received.token
        )
        assert claims["sid"] == client.session_name.partition(".")[0]
        assert "a delivery process sends them" in log_path.read_text()
        deliverers = [
            pid for pid in children(serve.pid)
            if b"notifications\0deliver" in Path(f"/proc/{pid}/cmdline").read_bytes()
        ]  # fmt: skip
        assert len(deliverers) == 1, "serve should run one delivery process itself"
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=60)
        assert not os.path.exists(f"/proc/{deliverers[0]}"), "the delivery process outlived serve"
    finally:
        try:  # whatever is left of serve's process group
            os.killpg(serve.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        serve.wait(timeout=10)
        receiver.stop()

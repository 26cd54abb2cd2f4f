"""Deployment under real gunicorn (2 workers, the project's config): metrics that add up across
workers, a Redis connection pool per worker, the probes, the structured request log in place of
gunicorn's access log, and the client address behind a trusted proxy."""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
import redis
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e import procfs
from tests.e2e.conftest import Gateway
from tests.e2e.wire import add_user, code, proof, send
from tests.gunicorn_process import start_gunicorn, stop_gunicorn
from webservice.standalone.redis_server import RedisServer

pytestmark = pytest.mark.e2e


@dataclass
class Served:
    gateway: Gateway
    master_pid: int
    redis_port: int


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """gunicorn with 2 workers (gunicorn's access log on, to tell the workers apart)."""
    workdir = tmp_path_factory.mktemp("deploy")
    with RedisServer(workdir / "redis") as server:
        log_path = workdir / "gunicorn.log"
        process, base_url, env = start_gunicorn(
            server.url, log_path, extra_env={"WSGATE_CHALLENGE_RATE_LIMIT": "0"}
        )
        try:
            yield Served(Gateway(base_url, server.url, env, log_path), process.pid, server.port)
        finally:
            stop_gunicorn(process)


def scrape(base_url: str) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics: {(name, sorted labels): value}."""
    response = requests.get(f"{base_url}/metrics", timeout=10)
    assert response.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def total(samples: dict, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))


def fresh_calls(base_url: str, count: int, marker: str, **params: str) -> list[dict]:
    """``count`` calls, each on its own connection, four at a time (so both workers answer)."""

    def one(i: int) -> dict:
        return send(
            base_url, "GET", f"?m={marker}-{i}", params=params, fresh_connection=True
        )

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(one, range(count)))


# --- metrics across workers ----------------------------------------------------------------------


def test_request_counts_add_up_across_workers(served):
    base = served.gateway.base_url
    before = scrape(base)
    marker = uuid.uuid4().hex
    # Both workers answer some of them: a worker that is fast enough can accept a whole batch
    # by itself, so batches go on (a few at most) until both have.
    sent = 0
    while sent == 0 or (len(served.gateway.worker_pids(marker)) < 2 and sent < 2000):
        answers = fresh_calls(base, 200, f"{marker}-{sent}", operation="listtypes")
        assert {code(answer) for answer in answers} == {"AUTHENTICATION_REQUIRED"}
        sent += 200
    assert len(served.gateway.worker_pids(marker)) == 2
    # ...and whichever worker serves /metrics, it counts them all.
    for _ in range(6):
        after = scrape(base)
        name, labels = "wsgate_requests_total", {"operation": "listtypes"}
        assert total(after, name, **labels) - total(before, name, **labels) == sent
        assert total(after, name) - total(before, name) == sent
        histogram = "wsgate_request_duration_seconds_count"
        assert total(after, histogram, **labels) - total(before, histogram, **labels) == sent


def test_logins_and_logouts_add_up_across_workers(served):
    base = served.gateway.base_url
    access_key = add_user(served.gateway, "counted")
    before = scrape(base)
    sessions = []
    for _ in range(10):
        token = send(base, "GET", "?operation=getchallenge&username=counted", fresh_connection=True)
        body = send(
            base, "POST", fresh_connection=True,
            data={"operation": "login", "username": "counted",
                  "accessKey": proof(token["result"]["token"], access_key)},
        )  # fmt: skip
        sessions.append(body["result"]["sessionName"])
    for session in sessions[:4]:
        send(base, "POST", data={"operation": "logout", "sessionName": session}, fresh_connection=True)
    after = scrape(base)
    logins = "wsgate_logins_total"
    assert total(after, logins, via="api", outcome="ok") - total(before, logins, via="api", outcome="ok") == 10
    logouts = "wsgate_logouts_total"
    assert total(after, logouts, via="api") - total(before, logouts, via="api") == 4


# --- a Redis pool per worker -------------------------------------------------------------------


def test_workers_never_share_a_redis_socket(served):
    """Every worker has Redis connections of its own after the fork: no socket (inode) is held by
    two processes, the master holds none, and Redis sees exactly the workers' connections."""
    base = served.gateway.base_url
    workers = procfs.children(served.master_pid)
    assert len(workers) == 2
    deadline = time.monotonic() + 30
    while True:
        # getchallenge reads and writes Redis: every worker that answers one holds a connection.
        fresh_calls(base, 20, uuid.uuid4().hex, operation="getchallenge", username="nobody")
        held = {pid: procfs.redis_sockets(pid, served.redis_port) for pid in workers}
        if all(held.values()):
            break
        assert time.monotonic() < deadline, held
    print("redis sockets per worker:", held)
    inodes = [inode for sockets in held.values() for inode in sockets]
    assert len(inodes) == len(set(inodes)), held
    assert procfs.redis_sockets(served.master_pid, served.redis_port) == {}

    monitor = redis.Redis(port=served.redis_port)
    try:
        own = monitor.client_id()
        seen = {
            int(client["addr"].rsplit(":", 1)[1])
            for client in monitor.client_list()
            if client["id"] != own
        }
    finally:
        monitor.close()
    ports = {port for sockets in held.values() for port in sockets.values()}
    assert ports <= seen
    assert procfs.children(served.master_pid) == workers


# --- probes ----------------------------------------------------------------------------------------


def test_probes_over_http(served):
    base = served.gateway.base_url
    health = requests.get(f"{base}/healthz", timeout=10)
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    ready = requests.get(f"{base}/readyz", timeout=10)
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})


# --- the request log ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def quiet(tmp_path_factory):
    """gunicorn as deployed: its access log off (the default), behind one trusted proxy."""
    workdir = tmp_path_factory.mktemp("log")
    with RedisServer(workdir / "redis") as server:
        log_path = workdir / "gunicorn.log"
        process, base_url, env = start_gunicorn(
            server.url, log_path, extra_env={"WSGATE_ACCESS_LOG": "", "WSGATE_TRUSTED_PROXIES": "1"}
        )
        try:
            yield Gateway(base_url, server.url, env, log_path)
        finally:
            stop_gunicorn(process)


def request_lines(gateway: Gateway) -> list[dict]:
    found = []
    for line in gateway.log_path.read_text().splitlines():
        if line.startswith("{"):
            found.append(json.loads(line))
    return found


def test_one_structured_line_per_request_and_no_access_log(quiet):
    marker = uuid.uuid4().hex
    access_key = add_user(quiet, "logged")
    token = send(quiet.base_url, "GET", "?operation=getchallenge&username=logged",
                 headers={"X-Forwarded-For": "203.0.113.77", "X-Request-Id": f"{marker}-1"})  # fmt: skip
    response = requests.post(
        f"{quiet.base_url}/webservice.php?m={marker}",
        data={"operation": "login", "username": "logged",
              "accessKey": proof(token["result"]["token"], access_key)},
        headers={"X-Forwarded-For": "203.0.113.77", "X-Request-Id": f"{marker}-2"},
        timeout=10,
    )  # fmt: skip
    session = response.json()["result"]["sessionName"]
    assert response.headers["X-Request-Id"] == f"{marker}-2"
    time.sleep(0.3)  # the workers' output reaches the file
    text = quiet.log_path.read_text()
    mine = [line for line in request_lines(quiet) if line["request_id"].startswith(marker)]
    assert [(line["operation"], line["code"], line["address"]) for line in mine] == [
        ("getchallenge", "ok", "203.0.113.77"),
        ("login", "ok", "203.0.113.77"),
    ]
    assert mine[1]["user"] == "logged" and mine[1]["session"]
    # Not a second line per request from gunicorn's access log, and no secret anywhere.
    assert marker not in text.replace(f'"{marker}-1"', "").replace(f'"{marker}-2"', "")
    for secret in (session, session.split(".")[1], access_key, token["result"]["token"]):
        assert secret not in text

"""/healthz, /readyz and /metrics: the probes answer without touching Redis beyond readyz's one
PING, and the metrics count requests, latencies, logins, logouts, endings and extensions."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from tests.conftest import TEST_SETTINGS
from tests.unit.web.support import PASSWORD, Env, make_env, md5_proof, ok
from webservice.serving import metrics
from webservice.standalone import create_app
from webservice.standalone.redis_server import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


class Delta:
    """The change of one sample between its creation and ``value``."""

    def __init__(self, name: str, **labels: str) -> None:
        self.name, self.labels = name, labels
        self.start = sample(name, **labels)

    @property
    def value(self) -> float:
        return sample(self.name, **self.labels) - self.start


@pytest.fixture
def env() -> Env:
    return make_env()


@pytest.fixture
def alice(env: Env):
    return env.add_user("alice")


def down_app(**settings):
    """An app whose Redis is a closed port, with no secret key configured (it would be fetched
    from Redis), and errors handled as in production."""
    return create_app(
        {
            **TEST_SETTINGS,
            "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
            "TESTING": False,
            "SECRET_KEY": None,
            **settings,
        }
    )


# --- /healthz and /readyz --------------------------------------------------------------------------


def test_healthz_answers_without_redis():
    client = down_app().test_client()
    started = time.monotonic()
    response = client.get("/healthz")
    assert time.monotonic() - started < 0.5
    assert (response.status_code, response.get_json()) == (200, {"status": "ok"})


def test_readyz_is_ready_when_redis_answers(env):
    response = env.api().get("/readyz")
    assert (response.status_code, response.get_json()) == (200, {"status": "ready"})


def test_readyz_is_unavailable_when_redis_is_down():
    client = down_app().test_client()
    started = time.monotonic()
    response = client.get("/readyz")
    assert time.monotonic() - started < 1.0
    assert response.status_code == 503
    assert response.mimetype == "application/json"
    assert response.get_json() == {"status": "unavailable", "redis": "ConnectionError"}
    # The other probe and the metrics are unaffected.
    assert client.get("/healthz").status_code == 200
    assert client.get("/metrics").status_code == 200


def test_readyz_gives_up_on_a_hung_redis_within_its_timeout():
    """A server that accepts connections and never answers: the probe's own short timeout (one
    retry: twice READY_TIMEOUT at most), not the requests' longer socket timeout."""
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(16)
        port = hung.getsockname()[1]
        client = down_app(
            REDIS_URL=f"redis://127.0.0.1:{port}/0", READY_TIMEOUT=0.2, REDIS_SOCKET_TIMEOUT=5.0
        ).test_client()
        started = time.monotonic()
        response = client.get("/readyz")
        elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert response.get_json() == {"status": "unavailable", "redis": "TimeoutError"}
    assert elapsed < 1.0, elapsed


def test_probes_set_no_cookie(env):
    for path in ("/healthz", "/readyz", "/metrics"):
        assert "Set-Cookie" not in env.api().get(path).headers, path


# --- /metrics ------------------------------------------------------------------------------------


def test_metrics_are_served_in_the_prometheus_text_format(env):
    env.call(env.api(), "listtypes", "GET")
    response = env.api().get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    text = response.get_data(as_text=True)
    for name in (
        "wsgate_requests_total",
        "wsgate_request_duration_seconds_bucket",
        "wsgate_logins_total",
        "wsgate_logouts_total",
        "wsgate_session_revocations_total",
        "wsgate_session_extensions_total",
    ):
        assert f"# TYPE {name.removesuffix('_bucket').removesuffix('_total')}" in text, name


def test_metrics_can_be_turned_off():
    env = make_env({"METRICS_ENABLED": False})
    assert env.api().get("/metrics").status_code == 404


def test_requests_are_counted_by_operation_and_code(env, alice):
    ok_calls = Delta("wsgate_requests_total", operation="getchallenge", code="ok")
    refused = Delta("wsgate_requests_total", operation="listtypes", code="AUTHENTICATION_REQUIRED")
    unknown = Delta("wsgate_requests_total", operation="unknown", code="UNKNOWN_OPERATION")
    timed = Delta("wsgate_request_duration_seconds_count", operation="listtypes")
    for _ in range(3):
        env.call(env.api(), "getchallenge", "GET", username="alice")
    for _ in range(2):
        env.call(env.api(), "listtypes", "GET", sessionName="nonsense")
    # Names that are no operation all count as "unknown": clients cannot add series.
    for name in ("nope", "other", "x" * 100):
        env.call(env.api(), name)
    assert (ok_calls.value, refused.value, unknown.value, timed.value) == (3, 2, 3, 2)


def test_latency_lands_in_the_histogram(env):
    total = Delta("wsgate_request_duration_seconds_sum", operation="listtypes")
    slowest = Delta("wsgate_request_duration_seconds_bucket", operation="listtypes", le="+Inf")
    env.call(env.api(), "listtypes", "GET")
    assert slowest.value == 1
    assert 0 < total.value < 5


def test_api_logins_logouts_and_endings(env, alice):
    logins_ok = Delta("wsgate_logins_total", via="api", outcome="ok")
    logins_failed = Delta("wsgate_logins_total", via="api", outcome="failed")
    logouts = Delta("wsgate_logouts_total", via="api")
    one = Delta("wsgate_session_revocations_total", via="api", reason="endsession")
    every = Delta("wsgate_session_revocations_total", via="api", reason="endallsessions")

    first = env.api_login(alice)
    client = env.api()
    token = ok(env.call(client, "getchallenge", "GET", username="alice"))["token"]
    env.call(client, "login", username="alice", accessKey=md5_proof(token, "wrong"))
    env.call(client, "login", username="nobody", accessKey="0" * 32)
    env.call(env.api(), "logout", sessionName=first)
    env.call(env.api(), "logout", sessionName=first)  # already gone: not a logout

    caller = env.api_login(alice)
    target = env.api_login(alice)
    views = ok(env.call(env.api(), "listsessions", "GET", sessionName=caller))
    handle = next(view["handle"] for view in views if not view["current"])
    ok(env.call(env.api(), "endsession", sessionName=caller, handle=handle))
    assert not env.alive(target)
    env.api_login(alice)
    env.api_login(alice)
    assert ok(env.call(env.api(), "endallsessions", sessionName=caller)) == {"ended": 3}

    assert (logins_ok.value, logins_failed.value, logouts.value) == (5, 2, 1)
    assert (one.value, every.value) == (1, 3)


def test_logins_refused_by_a_limit_are_counted_apart():
    env = make_env({"LOGIN_FAILURE_LIMIT": 1})
    env.add_user("alice")
    failed = Delta("wsgate_logins_total", via="api", outcome="failed")
    limited = Delta("wsgate_logins_total", via="api", outcome="limited")
    env.call(env.api(), "getchallenge", "GET", username="alice")
    env.call(env.api(), "login", username="alice", accessKey="0" * 32)
    env.call(env.api(), "login", username="alice", accessKey="0" * 32)
    assert (failed.value, limited.value) == (1, 1)


def test_extensions(env, alice):
    extended = Delta("wsgate_session_extensions_total")
    browser = env.browser()
    browser.login("alice")
    browser.extended_session()
    browser.extended_session()
    env.browser().extend()  # not logged in: not an extension
    assert extended.value == 2


def test_web_logins_and_logouts():
    env = make_env({"LOGIN_FAILURE_LIMIT": 2})
    env.add_user("alice")
    logins_ok = Delta("wsgate_logins_total", via="web", outcome="ok")
    logins_failed = Delta("wsgate_logins_total", via="web", outcome="failed")
    limited = Delta("wsgate_logins_total", via="web", outcome="limited")
    logouts = Delta("wsgate_logouts_total", via="web")

    browser = env.browser()
    browser.login("alice")
    browser.post("/logout")
    browser.post("/logout")  # no login any more: not counted
    other = env.browser()
    assert other.post("/login", username="alice", password="wrong").status_code == 401
    assert other.post("/login", username="alice", password="wrong").status_code == 401
    assert other.post("/login", username="alice", password=PASSWORD).status_code == 429
    # A form without its CSRF token is no login attempt.
    assert env.browser().post("/login", token=None, username="alice").status_code == 400

    assert (logins_ok.value, logins_failed.value, limited.value, logouts.value) == (1, 2, 1, 1)


COUNTING = textwrap.dedent(
    """
    import sys
    from webservice.serving import metrics
    assert metrics.multiprocess_mode()
    for _ in range(int(sys.argv[1])):
        metrics.observe_request("listtypes", "ok", 0.002)
    metrics.count_login("api", "ok")
    """
)
#: Counts once itself (so its own file is live), then scrapes as often as asked.
SERVING = textwrap.dedent(
    """
    import sys
    from webservice.serving import metrics
    metrics.observe_request("listtypes", "ok", 0.002)
    for _ in range(int(sys.argv[1])):
        sys.stdout.write(metrics.exposition().decode() + "\\f")
    """
)


def run(script: str, arg: str, directory) -> str:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    done = subprocess.run(
        [sys.executable, "-c", script, arg], cwd=ROOT, env=env, check=True,
        capture_output=True, text=True,
    )  # fmt: skip
    return done.stdout


def test_multiprocess_counts_add_up_across_processes(tmp_path):
    """Two processes count into PROMETHEUS_MULTIPROC_DIR and exit; a third serves the sum (what
    gunicorn's workers do; tests/e2e checks it under gunicorn)."""
    for count in ("7", "5"):
        run(COUNTING, count, tmp_path)
    first, second = run(SERVING, "2", tmp_path).split("\f")[:2]
    for text in (first, second):
        assert 'wsgate_requests_total{code="ok",operation="listtypes"} 13.0' in text
        assert 'wsgate_request_duration_seconds_count{operation="listtypes"} 13.0' in text
        assert 'wsgate_logins_total{outcome="ok",via="api"} 2.0' in text


def test_the_files_of_exited_processes_are_folded_into_one_per_type(tmp_path):
    for count in ("7", "5", "1"):
        run(COUNTING, count, tmp_path)
    assert len(list(tmp_path.glob("*.db"))) == 6
    run(SERVING, "1", tmp_path)
    # The serving process has exited too: the next scrape folds its files as well.
    text = run(SERVING, "1", tmp_path)
    assert 'wsgate_requests_total{code="ok",operation="listtypes"} 15.0' in text
    assert 'wsgate_request_duration_seconds_bucket{le="0.0025",operation="listtypes"} 15.0' in text
    assert 'wsgate_request_duration_seconds_bucket{le="0.001",operation="listtypes"} 0.0' in text
    assert 'wsgate_logins_total{outcome="ok",via="api"} 3.0' in text
    names = {path.name for path in tmp_path.glob("*.db")}
    # What is left: one file per type for the exited, and the files of the last (live) scraper.
    archives = {"counter_archive.db", "histogram_archive.db"}
    assert archives <= names and len(names) == 4, names
    assert all(name.split("_")[1][:-3].isdigit() for name in names - archives), names
    run(COUNTING, "10", tmp_path)
    text = run(SERVING, "1", tmp_path)
    assert 'wsgate_requests_total{code="ok",operation="listtypes"} 26.0' in text

"""Redis unreachable: every request still gets the envelope (SERVICE_UNAVAILABLE), quickly."""

from __future__ import annotations

import socket
import time

import pytest

from tests.unit.support import envelope, error

UNAVAILABLE = "SERVICE_UNAVAILABLE"
VALID_LOOKING_ID = "A" * 22 + "." + "B" * 43


def closed_port() -> int:
    """A loopback port that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def down_app(make_app):
    return make_app({"REDIS_URL": f"redis://127.0.0.1:{closed_port()}/0"}, use_fake_redis=False)


@pytest.fixture
def down(down_app):
    return down_app.test_client()


def timed(send):
    start = time.monotonic()
    response = send()
    elapsed = time.monotonic() - start
    assert elapsed < 3, elapsed
    return envelope(response)


@pytest.mark.parametrize(
    "params",
    [
        {"operation": "getchallenge", "username": "alice"},
        {"operation": "login", "username": "alice", "accessKey": "0" * 32},
        {"operation": "listtypes", "sessionName": VALID_LOOKING_ID},
        {"operation": "logout", "sessionName": VALID_LOOKING_ID},
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_redis_down_gives_service_unavailable(down, params, method):
    if method == "GET":
        body = timed(lambda: down.get("/webservice.php", query_string=params))
    else:
        body = timed(lambda: down.post("/webservice.php", data=params))
    error(body, UNAVAILABLE)


def test_redis_down_via_header(down):
    body = timed(
        lambda: down.get(
            "/webservice.php?operation=listtypes", headers={"corebos-authorization": VALID_LOOKING_ID}
        )
    )
    error(body, UNAVAILABLE)


def test_answers_that_need_no_redis_still_come(down):
    error(timed(lambda: down.get("/webservice.php?operation=nosuch")), "UNKNOWN_OPERATION")
    error(timed(lambda: down.get("/webservice.php?operation=listtypes")), "AUTHENTICATION_REQUIRED")
    error(
        timed(lambda: down.get("/webservice.php?operation=listtypes&sessionName=garbage")),
        "AUTHENTICATION_REQUIRED",
    )
    error(timed(lambda: down.get("/webservice.php?operation=getchallenge")), "MANDATORY_FIELDS_MISSING")


def test_repeated_requests_stay_bounded(down):
    start = time.monotonic()
    for _ in range(3):
        error(envelope(down.get("/webservice.php?operation=getchallenge&username=alice")), UNAVAILABLE)
    assert time.monotonic() - start < 6


def test_cli_reports_redis_unreachable(down_app):
    outcome = down_app.test_cli_runner().invoke(args=["users", "add", "carol"])
    assert outcome.exit_code != 0
    assert "Redis is unreachable" in outcome.output


@pytest.fixture
def production_down(make_app):
    """As deployed: not in testing mode, and no SECRET_KEY configured (the default)."""
    return make_app(
        {"REDIS_URL": f"redis://127.0.0.1:{closed_port()}/0", "TESTING": False, "SECRET_KEY": None},
        use_fake_redis=False,
    )


@pytest.mark.parametrize(
    "params",
    [
        {"operation": "getchallenge", "username": "alice"},
        {"operation": "listtypes", "sessionName": VALID_LOOKING_ID},
    ],
)
def test_redis_down_with_default_secret_key_setting(production_down, params):
    """The default SECRET_KEY (none: kept in Redis) must not turn an outage into another error."""
    body = timed(lambda: production_down.test_client().get("/webservice.php", query_string=params))
    error(body, UNAVAILABLE)


def test_redis_down_with_a_web_cookie_on_the_request(make_app):
    """A same-origin script sends the web UI's cookie along to webservice.php."""
    app = make_app(
        {"REDIS_URL": f"redis://127.0.0.1:{closed_port()}/0", "TESTING": False},
        use_fake_redis=False,
    )
    client = app.test_client()
    client.set_cookie(app.config.get("SESSION_COOKIE_NAME", "session"), "some-web-session-id")
    body = timed(lambda: client.get("/webservice.php?operation=getchallenge&username=alice"))
    error(body, UNAVAILABLE)

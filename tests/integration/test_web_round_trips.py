"""Redis round trips of the web paths, counted on a real redis-server: a page view of a
logged-in browser and ``extendsession`` cost one each, a web login at most three, a web logout at
most two (issue 11's goals). Counts are deterministic, so they are asserted exactly; ``pytest -s``
prints them.

A host app (Flask-Login over Flask's signed-cookie sessions), and the standalone server with
``WEB_SESSIONS="cookie"``. (With its default, Flask-Session in Redis, the standalone server adds
the record's reads and writes: its budget is in test_linked_sessions_race.py.)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import TEST_SETTINGS
from tests.host.hostapp import ACCESS_KEYS, PASSWORDS, create_host_app
from tests.integration.conftest import Tally, counting_client
from tests.integration.test_linked_sessions_race import CHEAP_HASHER
from webservice.standalone import create_app
from webservice.store.challenges import login_proof

pytestmark = pytest.mark.integration
Step = tuple[str, Callable[[], None]]

#: The designed cost of each web path, in round trips (all of the app's Redis clients).
DESIGNED = {
    "web login": 1,
    "page view (logged in)": 1,
    "extendsession": 1,
    "API call with the extended session": 1,
    "web logout": 2,
}
REPEATS = 4


def linked_session_steps(browser: Any, api: Any, state: dict[str, str]) -> list[Step]:
    """``extendsession`` from the logged-in page (its CSRF token in ``state["csrf"]``), then an
    API call with the session it gave."""

    def extendsession() -> None:
        answer = browser.post(
            "/webservice.php", data={"operation": "extendsession"},
            headers={"X-CSRFToken": state["csrf"]},
        ).get_json()  # fmt: skip
        assert answer["success"], answer
        state["linked"] = answer["result"]["sessionName"]

    def api_call() -> None:
        answer = api.get("/webservice.php", query_string={
            "operation": "listtypes", "sessionName": state["linked"]}).get_json()  # fmt: skip
        assert answer["success"], answer

    return [("extendsession", extendsession), ("API call with the extended session", api_call)]


def assert_family_ended(browser: Any, api: Any, state: dict[str, str], page: str) -> None:
    """The logout ended the family: the extended session is dead, the page asks to log in."""
    assert browser.get(page).status_code == 302
    answer = api.get("/webservice.php", query_string={
        "operation": "listtypes", "sessionName": state["linked"]}).get_json()  # fmt: skip
    assert answer["error"]["code"] == "AUTHENTICATION_REQUIRED"


def test_round_trips_of_a_host_apps_web_paths(redis_server, real_redis):
    tally = Tally()
    app = create_host_app(redis_client=counting_client(redis_server, tally))
    app.config["TESTING"] = True
    browser = app.test_client()
    api = app.test_client(use_cookies=False)
    state: dict[str, str] = {}

    def log_in() -> None:
        reply = browser.post("/login", data={"username": "alice", "password": PASSWORDS["alice"]})
        assert reply.status_code == 302, reply.get_data(as_text=True)[:300]

    def page_view() -> None:
        reply = browser.get("/app")
        assert reply.status_code == 200, reply.status
        state["csrf"] = re.search(
            r'name="wsgate-csrf" content="([^"]+)"', reply.get_data(as_text=True)
        ).group(1)

    def log_out() -> None:
        assert browser.post("/logout").status_code == 302

    steps: list[Step] = [
        ("web login", log_in),
        ("page view (logged in)", page_view),
        *linked_session_steps(browser, api, state),
        ("web logout", log_out),
    ]
    # Warm up (scripts loaded, connections open), and an API login on the same Redis: the web
    # paths must not depend on it.
    for _, step in steps:
        step()
    client = app.test_client(use_cookies=False)
    token = client.get("/webservice.php", query_string={
        "operation": "getchallenge", "username": "alice"}).get_json()["result"]["token"]  # fmt: skip
    assert client.post("/webservice.php", data={
        "operation": "login", "username": "alice",
        "accessKey": login_proof(token, ACCESS_KEYS["alice"])}).get_json()["success"]  # fmt: skip

    measured: dict[str, list[int]] = {name: [] for name, _ in steps}
    for _ in range(REPEATS):
        for name, step in steps:
            tally.round_trips = 0
            step()
            measured[name].append(tally.round_trips)
        assert_family_ended(browser, api, state, "/app")

    print()
    for name, figures in measured.items():
        print(f"{name:<40} {figures}")
    assert measured == {name: [designed] * REPEATS for name, designed in DESIGNED.items()}


#: The standalone server with its web sessions in signed cookies.
STANDALONE_DESIGNED = {
    "web login": 2,
    "page view (logged in)": 1,
    "extendsession": 1,
    "API call with the extended session": 1,
    "web logout": 2,
}


def test_round_trips_of_the_standalone_servers_web_paths_with_cookie_sessions(
    redis_server, real_redis
):
    tally = Tally()
    app = create_app(
        {**TEST_SETTINGS, "REDIS_URL": redis_server.url, "WEB_SESSIONS": "cookie"},
        redis_client=counting_client(redis_server, tally),
    )
    gateway = app.extensions["wsgate"]
    gateway.users.hasher = CHEAP_HASHER
    gateway.users.add("alice", "a password that is long enough")
    browser = app.test_client()
    api = app.test_client(use_cookies=False)
    state: dict[str, str] = {}

    def form_token(path: str) -> str:
        page = browser.get(path).get_data(as_text=True)
        return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)

    def log_in() -> None:
        reply = browser.post("/login", data={
            "username": "alice", "password": "a password that is long enough",
            "csrf_token": state["login_form"]})  # fmt: skip
        assert (reply.status_code, reply.headers.get("Location")) == (302, "/"), reply.status

    def page_view() -> None:
        reply = browser.get("/")
        assert reply.status_code == 200, (reply.status, reply.headers.get("Location"))
        state["csrf"] = re.search(
            r'<meta name="csrf-token" content="([^"]+)"', reply.get_data(as_text=True)
        ).group(1)

    def log_out() -> None:
        reply = browser.post("/logout", data={"csrf_token": state["csrf"]})
        assert (reply.status_code, reply.headers.get("Location")) == (302, "/login")

    steps: list[Step] = [
        ("web login", log_in),
        ("page view (logged in)", page_view),
        *linked_session_steps(browser, api, state),
        ("web logout", log_out),
    ]
    measured: dict[str, list[int]] = {name: [] for name, _ in steps}
    for attempt in range(REPEATS + 1):  # the first pass warms up: scripts loaded
        state["login_form"] = form_token("/login")
        for name, step in steps:
            tally.round_trips = 0
            step()
            if attempt:
                measured[name].append(tally.round_trips)
        assert_family_ended(browser, api, state, "/")
    # No web session record in Redis: the cookie holds it.
    assert not real_redis.keys(gateway.keys.web_session_prefix() + "*")

    print()
    for name, figures in measured.items():
        print(f"{name:<40} {figures}")
    assert measured == {name: [designed] * REPEATS for name, designed in STANDALONE_DESIGNED.items()}

"""Redis round trips of the web paths of a host app (Flask-Login over Flask's signed-cookie
sessions), counted on a real redis-server: a page view of a logged-in browser and
``extendsession`` cost one each, a web login at most three, a web logout at most two (issue 11's
goals). Counts are deterministic, so they are asserted exactly; ``pytest -s`` prints them.

(The standalone server's web UI keeps its session data server-side with Flask-Session, which
adds the record's reads and writes: its budget is in test_linked_sessions_race.py.)
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from tests.host.hostapp import ACCESS_KEYS, PASSWORDS, create_host_app
from tests.integration.test_round_trips import Tally, counting_client
from webservice.store.challenges import login_proof

pytestmark = pytest.mark.integration

#: The designed cost of each web path, in round trips (all of the app's Redis clients).
DESIGNED = {
    "web login": 1,
    "page view (logged in)": 1,
    "extendsession": 1,
    "API call with the extended session": 1,
    "web logout": 2,
}
REPEATS = 4


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

    def log_out() -> None:
        assert browser.post("/logout").status_code == 302

    steps: list[tuple[str, Callable[[], None]]] = [
        ("web login", log_in),
        ("page view (logged in)", page_view),
        ("extendsession", extendsession),
        ("API call with the extended session", api_call),
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
        # The logout ended the family: the extended session is dead, the page asks to log in.
        assert browser.get("/app").status_code == 302
        answer = api.get("/webservice.php", query_string={
            "operation": "listtypes", "sessionName": state["linked"]}).get_json()  # fmt: skip
        assert answer["error"]["code"] == "AUTHENTICATION_REQUIRED"

    print()
    for name, figures in measured.items():
        print(f"{name:<40} {figures}")
    assert measured == {name: [designed] * REPEATS for name, designed in DESIGNED.items()}

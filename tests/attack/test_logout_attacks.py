"""Attacks on ``logout``, which on a single Redis checks the session and ends its family in one
script (Endings.own_family), over real gunicorn (2 workers) and a real redis-server: a logout
sent many times at once ends the family once and is audited once; an extension racing the
logout of its family never leaves a session of that family alive; knowing a session's public
handle, or its family id, ends nothing."""

from __future__ import annotations

import json
import re
import secrets
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.attack.conftest import Gateway
from tests.attack.test_bounded_state import api_login, call
from tests.attack.test_web_login_secret import web_login

pytestmark = pytest.mark.e2e
ENDPOINT = "/webservice.php"
ATTEMPTS = 24
RACES = 15


def add_user(gateway: Gateway, name: str) -> str:
    return json.loads(gateway.flask("users", "add", name, "--json").stdout)["accessKey"]


def logout_entries(gateway: Gateway, user: str) -> list[dict]:
    lines = gateway.flask("audit", "tail", "-n", "1000", "--user", user, "--json").stdout
    return [entry for line in lines.splitlines() if (entry := json.loads(line))["event"] == "logout"]


def handle_of(gateway: Gateway, session: str) -> str:
    listing = call(gateway, operation="listsessions", sessionName=session)["result"]
    [own] = [view for view in listing if view["kind"] == "api"]
    return own["handle"]


def test_a_logout_sent_many_times_at_once_ends_the_family_once(live_gateway: Gateway) -> None:
    key = add_user(live_gateway, "manyout")
    session = api_login(live_gateway, "manyout", key)
    bystander = api_login(live_gateway, "manyout", key)

    def logout(_: int) -> str:
        answer = call(live_gateway, operation="logout", sessionName=session)
        return "ok" if answer["success"] else answer["error"]["code"]

    with ThreadPoolExecutor(ATTEMPTS) as pool:
        outcomes = Counter(pool.map(logout, range(ATTEMPTS)))

    assert outcomes == {"ok": 1, "AUTHENTICATION_REQUIRED": ATTEMPTS - 1}, outcomes
    assert len(logout_entries(live_gateway, "manyout")) == 1
    assert call(live_gateway, operation="listtypes", sessionName=session)["success"] is False
    assert call(live_gateway, operation="listtypes", sessionName=bystander)["success"] is True


def test_an_extension_racing_the_logout_of_its_family_leaves_nothing_alive(
    live_gateway: Gateway,
) -> None:
    """Each race: a browser logged in, one of its API sessions logged out while the browser asks
    for more at the same moment. Whatever the order, once the logout has answered, neither the
    web login nor any API session it was given (before or during the race) is alive."""
    browser = web_login(live_gateway, "racer")
    for _ in range(RACES):
        page = browser.get(live_gateway.base_url + "/login", timeout=10)
        if page.url.rstrip("/").endswith("/login"):
            token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
            browser.post(
                live_gateway.base_url + "/login",
                data={"username": "racer", "password": "pw-racer", "csrf_token": token},
                timeout=10,
            )
        home = browser.get(live_gateway.base_url + "/", timeout=10).text
        csrf = re.search(r'name="csrf-token" content="([^"]+)"', home).group(1)

        def extend(_: int, csrf: str = csrf) -> str | None:
            answer = browser.post(
                live_gateway.base_url + ENDPOINT, data={"operation": "extendsession"},
                headers={"X-CSRFToken": csrf}, timeout=10,
            ).json()  # fmt: skip
            return answer["result"]["sessionName"] if answer["success"] else None

        first = extend(0)
        assert first is not None
        with ThreadPoolExecutor(6) as pool:
            racing = pool.map(extend, range(5))
            logged_out = call(live_gateway, operation="logout", sessionName=first)
            given = [first, *(name for name in racing if name is not None)]
        assert logged_out["success"], logged_out
        for name in given:
            assert call(live_gateway, operation="listtypes", sessionName=name)["success"] is False
        assert browser.get(live_gateway.base_url + "/", timeout=10).url.endswith("/login")


def test_a_handle_or_a_family_id_ends_nothing(live_gateway: Gateway) -> None:
    """Handles and family ids are public (listings, the audit trail, logs): as ``sessionName``,
    in the header, or with a guessed secret, they are refused and the session lives on."""
    key = add_user(live_gateway, "handled")
    session = api_login(live_gateway, "handled", key)
    handle = handle_of(live_gateway, session)
    family = session.partition(".")[0]
    guesses = [handle, family, f"{family}.", f"{family}.{secrets.token_urlsafe(32)}", f"{handle}.x"]
    for guess in guesses:
        assert call(live_gateway, operation="logout", sessionName=guess)["error"]["code"] == (
            "AUTHENTICATION_REQUIRED"
        ), guess
        answer = requests.post(
            live_gateway.base_url + ENDPOINT,
            data={"operation": "logout"},
            headers={"corebos-authorization": guess},
            timeout=10,
        ).json()
        assert answer["error"]["code"] == "AUTHENTICATION_REQUIRED", guess
    assert call(live_gateway, operation="listtypes", sessionName=session)["success"] is True
    assert logout_entries(live_gateway, "handled") == []

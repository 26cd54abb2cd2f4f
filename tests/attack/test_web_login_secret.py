"""A web login's secret is no API credential: the web cookie, with the family id that every
listing shows in its handles, never authenticates a webservice.php call."""

from __future__ import annotations

import json
import re

import pytest
import requests

from tests.attack.conftest import Gateway

pytestmark = pytest.mark.e2e
ENDPOINT = "/webservice.php"
COOKIE = "wsgate_session"


def web_login(gateway: Gateway, name: str) -> requests.Session:
    record = json.loads(gateway.flask("users", "add", name, "--password", "pw-" + name, "--json").stdout)
    assert record["username"] == name
    browser = requests.Session()
    page = browser.get(gateway.base_url + "/login", timeout=10).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    answer = browser.post(
        gateway.base_url + "/login",
        data={"username": name, "password": "pw-" + name, "csrf_token": token},
        timeout=10,
    )
    assert answer.url.rstrip("/") == gateway.base_url, answer.url
    return browser


def test_the_web_cookie_with_its_family_id_is_no_session_name(live_gateway: Gateway) -> None:
    """The attack: take a browser's cookie, read the family id of its web login from the handles
    that ``listsessions`` shows, and send ``<family id>.<cookie>`` as ``sessionName``. Before,
    the root member of a web family was the hash of the cookie, so this was a live API session
    past extendsession's same-origin check; now it is AUTHENTICATION_REQUIRED."""
    browser = web_login(live_gateway, "cookieowner")
    page = browser.get(live_gateway.base_url + "/", timeout=10).text
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    extended = browser.post(
        live_gateway.base_url + ENDPOINT,
        data={"operation": "extendsession"},
        headers={"X-CSRFToken": csrf},
        timeout=10,
    ).json()
    assert extended["success"], extended
    api = extended["result"]["sessionName"]
    listing = requests.get(
        live_gateway.base_url + ENDPOINT,
        params={"operation": "listsessions", "sessionName": api},
        timeout=10,
    ).json()["result"]
    [web] = [view for view in listing if view["kind"] == "web"]
    family = web["handle"].partition(":")[0]
    cookie = browser.cookies[COOKIE]
    forged = f"{family}.{cookie}"
    for params, headers in (
        ({"operation": "listtypes", "sessionName": forged}, {}),
        ({"operation": "listtypes"}, {"corebos-authorization": forged}),
    ):
        answer = requests.get(
            live_gateway.base_url + ENDPOINT, params=params, headers=headers, timeout=10
        ).json()
        assert answer["success"] is False, answer
        assert answer["error"]["code"] == "AUTHENTICATION_REQUIRED", answer
    # The browser and its API session are untouched by the attempt.
    assert browser.get(live_gateway.base_url + "/", timeout=10).url.rstrip("/") == live_gateway.base_url
    assert requests.get(
        live_gateway.base_url + ENDPOINT,
        params={"operation": "listtypes", "sessionName": api},
        timeout=10,
    ).json()["success"]

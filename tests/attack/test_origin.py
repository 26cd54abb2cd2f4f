"""extendsession's same-origin rule does not trust the client's Host header when the public
origin is configured (WSGATE_PUBLIC_ORIGINS)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
import requests

from tests.attack.conftest import Gateway, serve_gateway
from tests.attack.test_web_login_secret import web_login
from webservice.standalone.redis_server import free_port

pytestmark = pytest.mark.e2e
ENDPOINT = "/webservice.php"


@pytest.fixture(scope="module")
def configured_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """gunicorn whose public origin is configured: its own address."""
    port = free_port()
    extra_env = {"WSGATE_PUBLIC_ORIGINS": json.dumps([f"http://127.0.0.1:{port}"])}
    with serve_gateway(tmp_path_factory.mktemp("origin"), extra_env, port) as served:
        yield served


def extend(gateway: Gateway, browser: requests.Session, headers: dict[str, str]) -> dict:
    """extendsession with the browser's cookie, sent by hand (requests would pick cookies by the
    forged Host)."""
    cookie = "; ".join(f"{name}={value}" for name, value in browser.cookies.items())
    return requests.post(
        gateway.base_url + ENDPOINT,
        data={"operation": "extendsession"},
        headers={**headers, "Cookie": cookie},
        timeout=10,
    ).json()


def test_a_forged_host_does_not_make_a_foreign_origin_the_gateways_own(configured_gateway: Gateway) -> None:
    """The attack: with the browser's cookie, send ``Host: evil.example`` and ``Origin:
    http://evil.example``, no CSRF token. Compared with scheme://Host, that origin looked like
    the gateway's own and got an API session; with the public origin configured it is refused."""
    browser = web_login(configured_gateway, "hostforger")
    forged = extend(configured_gateway, browser, {"Host": "evil.example", "Origin": "http://evil.example"})
    assert forged["success"] is False and forged["error"]["code"] == "ACCESS_DENIED", forged
    own = extend(configured_gateway, browser, {"Origin": configured_gateway.base_url})
    assert own["success"] is True, own


def test_without_the_setting_the_host_is_what_the_request_says(live_gateway: Gateway) -> None:
    """What WSGATE_PUBLIC_ORIGINS is for: unset, the request's Host decides (README: set it)."""
    browser = web_login(live_gateway, "hostsayer")
    forged = extend(live_gateway, browser, {"Host": "evil.example", "Origin": "http://evil.example"})
    assert forged["success"] is True, forged
    page = browser.get(live_gateway.base_url + "/", timeout=10).text
    assert re.search(r'name="csrf-token"', page)

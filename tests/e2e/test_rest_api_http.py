"""The REST session API (/v1) over real gunicorn: API sessions by bearer, a browser by its cookie,
the linked logouts both ways, the cookie's CSRF rule, and no input that makes a 5xx."""

from __future__ import annotations

import re
import socket
from urllib.parse import urlsplit

import pytest
import requests

from tests.attack.conftest import Gateway
from tests.attack.test_web_login_secret import web_login
from tests.e2e.wire import add_user, proof, send

pytestmark = pytest.mark.e2e
TIMEOUT = 10
PROBLEM = "application/problem+json"


def api_login(gateway: Gateway, username: str, access_key: str) -> str:
    token = send(gateway.base_url, "GET", f"?operation=getchallenge&username={username}")["result"]["token"]
    answer = send(
        gateway.base_url,
        "POST",
        data={"operation": "login", "username": username, "accessKey": proof(token, access_key)},
    )
    assert answer["success"], answer
    return answer["result"]["sessionName"]


def alive(gateway: Gateway, session_name: str) -> bool:
    return send(gateway.base_url, "GET", f"?operation=listtypes&sessionName={session_name}")["success"]


def bearer(session_name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {session_name}"}


def csrf_of(gateway: Gateway, browser: requests.Session) -> str:
    page = browser.get(gateway.base_url + "/", timeout=TIMEOUT).text
    return re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)


def extend(gateway: Gateway, browser: requests.Session) -> str:
    """extendsession from the browser's page: an API session linked to its web login."""
    answer = browser.post(
        gateway.base_url + "/webservice.php",
        data={"operation": "extendsession"},
        headers={"X-CSRFToken": csrf_of(gateway, browser)},
        timeout=TIMEOUT,
    ).json()
    assert answer["success"], answer
    return answer["result"]["sessionName"]


def test_an_api_client_lists_and_logs_out_by_bearer(live_gateway: Gateway) -> None:
    key = add_user(live_gateway, "restapi")
    first, second = api_login(live_gateway, "restapi", key), api_login(live_gateway, "restapi", key)
    listing = requests.get(live_gateway.base_url + "/v1/me/sessions", headers=bearer(first), timeout=TIMEOUT)
    assert listing.status_code == 200
    data = listing.json()["data"]
    assert len(data) == 2 and [item["current"] for item in data] == [False, True]
    assert listing.headers["Cache-Control"] == "no-store"

    out = requests.post(live_gateway.base_url + "/v1/auth/logout", headers=bearer(first), timeout=TIMEOUT)
    assert out.status_code == 200 and out.json() == {"message": "Logged out successfully"}
    assert "expires=thu, 01 jan 1970" in out.headers["Set-Cookie"].lower()
    assert not alive(live_gateway, first) and alive(live_gateway, second)
    again = requests.post(live_gateway.base_url + "/v1/auth/logout", headers=bearer(first), timeout=TIMEOUT)
    assert again.status_code == 200, "a retried logout is a logout"
    refused = requests.get(live_gateway.base_url + "/v1/me/sessions", headers=bearer(first), timeout=TIMEOUT)
    assert refused.status_code == 401 and refused.headers["Content-Type"] == PROBLEM
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]


def test_a_browser_logs_out_with_its_linked_sessions(live_gateway: Gateway) -> None:
    browser = web_login(live_gateway, "restweb")
    linked = extend(live_gateway, browser)
    assert alive(live_gateway, linked)
    out = browser.delete(live_gateway.base_url + "/v1/auth/session", timeout=TIMEOUT)
    assert out.status_code == 204
    assert not browser.cookies.get("wsgate_session"), "the cookie is expired"
    assert not alive(live_gateway, linked)
    home = browser.get(live_gateway.base_url + "/", timeout=TIMEOUT, allow_redirects=False)
    assert home.status_code == 302 and home.headers["Location"].endswith("/login")


def test_a_linked_api_session_logs_the_browser_out(live_gateway: Gateway) -> None:
    browser = web_login(live_gateway, "restlinked")
    linked = extend(live_gateway, browser)
    out = requests.delete(live_gateway.base_url + "/v1/auth/session", headers=bearer(linked), timeout=TIMEOUT)
    assert out.status_code == 204
    home = browser.get(live_gateway.base_url + "/", timeout=TIMEOUT, allow_redirects=False)
    assert home.status_code == 302


def test_a_cross_site_page_cannot_end_a_browsers_sessions(live_gateway: Gateway) -> None:
    """The attack: a page elsewhere makes the logged-in browser send DELETE /v1/me/sessions with
    its cookie (a form cannot send DELETE, but fetch with credentials can try). Refused: 403, and
    every session lives on."""
    key = add_user(live_gateway, "restcsrf")
    browser = web_login(live_gateway, "restcsrf_web")
    other = api_login(live_gateway, "restcsrf", key)
    for headers in ({"Origin": "https://evil.example"}, {}):
        answer = browser.delete(live_gateway.base_url + "/v1/me/sessions", headers=headers, timeout=TIMEOUT)
        assert answer.status_code == 403 and answer.headers["Content-Type"] == PROBLEM
    assert browser.get(live_gateway.base_url + "/", timeout=TIMEOUT, allow_redirects=False).status_code == 200
    assert alive(live_gateway, other)
    done = browser.delete(
        live_gateway.base_url + "/v1/me/sessions",
        headers={"X-CSRFToken": csrf_of(live_gateway, browser)},
        timeout=TIMEOUT,
    )
    assert done.status_code == 204
    assert browser.get(live_gateway.base_url + "/", timeout=TIMEOUT, allow_redirects=False).status_code == 302


def test_nobody_ends_another_users_session_by_its_id(live_gateway: Gateway) -> None:
    victim = api_login(live_gateway, "restvictim", add_user(live_gateway, "restvictim"))
    attacker = api_login(live_gateway, "restattacker", add_user(live_gateway, "restattacker"))
    victim_id = requests.get(
        live_gateway.base_url + "/v1/me/sessions", headers=bearer(victim), timeout=TIMEOUT
    ).json()["data"][0]["id"]
    answer = requests.delete(
        f"{live_gateway.base_url}/v1/me/sessions/{victim_id}", headers=bearer(attacker), timeout=TIMEOUT
    )
    assert answer.status_code == 204
    assert alive(live_gateway, victim)


def raw_request(gateway: Gateway, data: bytes) -> bytes:
    """Sends raw bytes, answers the status line and headers."""
    address = urlsplit(gateway.base_url)
    with socket.create_connection((address.hostname, address.port), timeout=TIMEOUT) as connection:
        connection.sendall(data)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = connection.recv(65536)
            if not chunk:
                break
            received += chunk
    return received


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"TRACE /v1/me/sessions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /v1/me/sessions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\nConnection: close\r\n\r\n",
        b"DELETE /v1/me/sessions/%ff%00%c3 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a.b\r\nConnection: close\r\n\r\n",
        b"GET /v1/me/sessions?keep=%ff HTTP/1.1\r\nHost: x\r\nCookie: wsgate_session=\xff\r\nConnection: close\r\n\r\n",
        b"POST /v1/auth/logout HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\nConnection: close\r\n\r\nxx",
        b"POST /v1/auth/logout HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"DELETE /v1/me/sessions?keep=current&keep=x HTTP/1.1\r\nHost: x\r\nAuthorization: Basic Og==\r\nConnection: close\r\n\r\n",
    ],
    ids=["trace", "bearer-bytes", "id-bytes", "cookie-bytes", "huge-length", "chunked", "basic"],
)
def test_no_input_makes_a_server_error(live_gateway: Gateway, request_bytes: bytes) -> None:
    answer = raw_request(live_gateway, request_bytes)
    status = int(answer.split(b" ", 2)[1])
    assert 200 <= status < 500, answer[:300]
    if status >= 400:
        assert b"application/problem+json" in answer, answer[:300]

"""A host app with its own users and Flask-Login, plus ``WSGate``, over fakeredis and Flask's test
client: the web login and the API sessions it gives are one family, whichever side logs out.

Every browser is a Flask test client (it keeps cookies); every in-page script or API client is a
separate test client without the browser's cookie, so only its ``sessionName`` authenticates it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import fakeredis
import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_login import current_user

from tests.host.hostapp import (
    ACCESS_KEYS,
    FLASK_SESSION_PREFIX,
    PASSWORDS,
    SESSION_KINDS,
    create_host_app,
    create_plain_host_app,
)
from tests.host.support import (
    RESULT_KEYS,
    error_code,
    form_csrf_token,
    meta_csrf_token,
    proof,
    success,
)

ORIGIN = "http://localhost"  # the test client's own origin
EVIL_ORIGIN = "https://evil.example"
NOT_LOGGED_IN = {"AUTHENTICATION_FAILURE", "AUTHENTICATION_REQUIRED"}

HostFactory = Callable[..., Flask]


# --- fixtures and helpers -------------------------------------------------------------------------


@pytest.fixture
def host_server() -> fakeredis.FakeServer:
    """One fake Redis server per test: the gateway's data and Flask-Session's share it."""
    return fakeredis.FakeServer()


@pytest.fixture
def make_host(host_server: fakeredis.FakeServer) -> HostFactory:
    """Builds host apps on ``host_server``: ``make_host(session, plain=False, **options)``."""

    def make(session: str = "cookie", plain: bool = False, **options: Any) -> Flask:
        gateway_client = fakeredis.FakeRedis(server=host_server, decode_responses=True)
        session_redis = fakeredis.FakeRedis(server=host_server) if session == "flask-session" else None
        factory = create_plain_host_app if plain else create_host_app
        app = factory(
            redis_client=gateway_client, session=session, session_redis=session_redis, **options
        )
        app.config["TESTING"] = True
        return app

    return make


def browser_login(browser: FlaskClient, username: str = "alice") -> None:
    """Logs ``browser`` in through the host's own login form."""
    response = browser.post("/login", data={"username": username, "password": PASSWORDS[username]})
    assert response.status_code == 302, f"host login of {username}: {response.status_code} {response.data!r}"
    page = browser.get("/")
    assert page.status_code == 200 and page.get_data(as_text=True) == f"hello {username}", (
        f"after logging in, / should greet {username}: {page.status_code} {page.data!r}"
    )


def call(client: FlaskClient, operation: str, method: str = "POST", headers: dict[str, str] | None = None,
         **params: str) -> dict[str, Any]:  # fmt: skip
    """One webservice.php call; asserts the HTTP 200 JSON envelope every answer is."""
    data = {"operation": operation, **params}
    if method == "GET":
        response = client.get("/webservice.php", query_string=data, headers=headers or {})
    else:
        response = client.post("/webservice.php", data=data, headers=headers or {})
    assert response.status_code == 200, f"{operation}: HTTP {response.status_code} {response.data!r}"
    assert response.mimetype == "application/json", f"{operation}: {response.mimetype} {response.data!r}"
    return response.get_json()


def extend(browser: FlaskClient, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return call(browser, "extendsession", headers={"Origin": ORIGIN} if headers is None else headers)


def extended_session(browser: FlaskClient, user_id: int = 7) -> str:
    """extendsession from the logged-in ``browser`` (same Origin); its sessionName."""
    result = success(extend(browser), "extendsession with the app's own Origin")
    assert set(result) == RESULT_KEYS, f"extendsession result keys: {result!r}"
    assert result["userId"] == f"19x{user_id}", f"extendsession userId: {result!r}"
    assert result["version"] == "0.22", f"extendsession version: {result!r}"
    assert isinstance(result["sessionName"], str) and result["sessionName"], result
    return result["sessionName"]


def api_login(app: Flask, username: str, access_key: str) -> dict[str, Any]:
    """getchallenge then login from a client without cookies; the login envelope."""
    script = app.test_client()
    token = success(call(script, "getchallenge", "GET", username=username), f"getchallenge {username}")["token"]
    return call(script, "login", username=username, accessKey=proof(token, access_key))


def is_live(app: Flask, session_name: str) -> bool:
    """Whether ``session_name`` authenticates listtypes, asked by a client without cookies."""
    envelope = call(app.test_client(), "listtypes", "GET", sessionName=session_name)
    if envelope["success"]:
        return True
    code = error_code(envelope, "listtypes")
    assert code == "AUTHENTICATION_REQUIRED", f"listtypes of a dead session: {envelope!r}"
    return False


def assert_sent_to_login(browser: FlaskClient) -> None:
    """``/`` (login_required) redirects to the login page, and Flask-Login sees an anonymous user."""
    with browser:
        response = browser.get("/")
        assert response.status_code == 302, f"GET / should redirect to login: {response.status_code} {response.data!r}"
        assert urlsplit(response.headers["Location"]).path == "/login", response.headers["Location"]
        assert current_user.is_anonymous, f"current_user should be anonymous, is {current_user!r}"
    assert browser.get("/whoami").get_json() == {"anonymous": True, "username": None}


def session_cookie(app: Flask, browser: FlaskClient) -> str:
    cookie = browser.get_cookie(app.config["SESSION_COOKIE_NAME"])
    assert cookie is not None, "the browser has no session cookie"
    return cookie.value


# --- the two main flows ---------------------------------------------------------------------------


@pytest.mark.parametrize("session_kind", SESSION_KINDS)
def test_host_logout_ends_the_api_sessions_it_gave(make_host: HostFactory, session_kind: str) -> None:
    """login_user starts a family; extendsession adds an API session to it that authenticates
    listtypes on its own; logout_user ends it (and only it: an independent API login of the same
    user, a family of its own, stays live)."""
    app = make_host(session_kind)
    browser = app.test_client()
    browser_login(browser)
    session_name = extended_session(browser)
    assert is_live(app, session_name), "the extended session should authenticate listtypes"
    independent = success(api_login(app, "alice", ACCESS_KEYS["alice"]), "API login of alice")["sessionName"]
    assert independent != session_name

    response = browser.post("/logout")
    assert response.status_code == 302, f"host logout: {response.status_code} {response.data!r}"

    assert not is_live(app, session_name), "host logout_user must end the API session extendsession gave"
    assert_sent_to_login(browser)
    assert is_live(app, independent), "an API login of its own is another family: host logout must leave it"


@pytest.mark.parametrize("session_kind", SESSION_KINDS)
def test_api_logout_of_linked_session_logs_the_browser_out(make_host: HostFactory, session_kind: str) -> None:
    """An API logout of the extended session ends the browser's login: its next request is
    anonymous and login_required views redirect to /login; another user's browser is untouched,
    and logging in again works."""
    app = make_host(session_kind)
    browser, other = app.test_client(), app.test_client()
    browser_login(browser, "alice")
    browser_login(other, "bob")
    session_name = extended_session(browser)

    success(call(app.test_client(), "logout", sessionName=session_name), "API logout of the linked session")

    assert not is_live(app, session_name)
    assert_sent_to_login(browser)
    assert error_code(extend(browser), "extendsession after the API logout") in NOT_LOGGED_IN
    assert other.get("/").get_data(as_text=True) == "hello bob", "bob's login is another family"

    browser_login(browser, "alice")
    assert is_live(app, extended_session(browser)), "a new login gives live API sessions again"


# --- extendsession's cross-site rules -------------------------------------------------------------


@pytest.mark.parametrize("session_kind", SESSION_KINDS)
def test_extendsession_from_a_foreign_origin_is_refused(make_host: HostFactory, session_kind: str) -> None:
    """With the user's cookie, a foreign Origin gets ACCESS_DENIED, even with a valid
    X-CSRFToken; the login itself is unharmed."""
    app = make_host(session_kind)
    browser = app.test_client()
    browser_login(browser)
    token = meta_csrf_token(browser.get("/api-page").get_data(as_text=True))

    assert error_code(extend(browser, {"Origin": EVIL_ORIGIN}), "foreign Origin") == "ACCESS_DENIED"
    refused = extend(browser, {"Origin": EVIL_ORIGIN, "X-CSRFToken": token})
    assert error_code(refused, "foreign Origin with a valid token") == "ACCESS_DENIED"
    assert browser.get("/").status_code == 200, "a refused extendsession must not log the browser out"


@pytest.mark.parametrize("token_source", ["jinja-global", "gate.csrf_token"])
@pytest.mark.parametrize("session_kind", SESSION_KINDS)
def test_extendsession_with_csrf_header_and_no_origin(
    make_host: HostFactory, session_kind: str, token_source: str
) -> None:
    """Without Origin, the page's CSRF token in X-CSRFToken (from ``wsgate_csrf_token()`` in a
    template, or ``gate.csrf_token()``) is the proof of same origin; no token or a wrong one
    gets ACCESS_DENIED."""
    app = make_host(session_kind)
    browser = app.test_client()
    browser_login(browser)
    if token_source == "jinja-global":
        token = meta_csrf_token(browser.get("/api-page").get_data(as_text=True))
    else:
        token = browser.get("/api-token").get_json()["csrfToken"]

    assert error_code(extend(browser, {}), "no Origin, no token") == "ACCESS_DENIED"
    assert error_code(extend(browser, {"X-CSRFToken": token + "x"}), "no Origin, wrong token") == "ACCESS_DENIED"
    result = success(extend(browser, {"X-CSRFToken": token}), "no Origin, the page's token")
    assert result["userId"] == "19x7", result
    assert is_live(app, result["sessionName"])


@pytest.mark.parametrize("session_kind", SESSION_KINDS)
def test_extendsession_without_cookie_needs_authentication(make_host: HostFactory, session_kind: str) -> None:
    """Without the session cookie, extendsession answers AUTHENTICATION_REQUIRED (same Origin or
    not), never a session."""
    app = make_host(session_kind)
    browser_login(app.test_client())  # someone is logged in, in another browser
    stranger = app.test_client()
    assert error_code(extend(stranger), "no cookie, own Origin") == "AUTHENTICATION_REQUIRED"
    assert error_code(extend(stranger, {}), "no cookie, no Origin") == "AUTHENTICATION_REQUIRED"


# --- API logins against the host's users ----------------------------------------------------------


def test_api_login_uses_the_hosts_users(make_host: HostFactory) -> None:
    """getchallenge and login find users through api_user_loader: the right key logs in (userId
    19x<host id>), a wrong key gets INVALID_USER_CREDENTIALS, and an unknown or disabled user is
    answered like a wrong key (a challenge, then the same error), never a server error."""
    app = make_host("cookie")

    result = success(api_login(app, "alice", ACCESS_KEYS["alice"]), "login with the right key")
    assert set(result) == RESULT_KEYS and result["userId"] == "19x7", result
    assert is_live(app, result["sessionName"])
    bob = success(api_login(app, "bob", ACCESS_KEYS["bob"]), "login of bob")
    assert bob["userId"] == "19x8", bob

    wrong = api_login(app, "alice", "not-alices-key")
    assert error_code(wrong, "wrong key") == "INVALID_USER_CREDENTIALS"

    for name in ("nobody", "carol"):  # unknown to the host; disabled on the host
        answer = api_login(app, name, ACCESS_KEYS.get(name, "some-key"))
        code = error_code(answer, f"login of {name}")
        assert code in {"INVALID_USER_CREDENTIALS", "INVALID_AUTH_TOKEN"}, answer
        if code == "INVALID_USER_CREDENTIALS":
            assert answer["error"]["message"] == wrong["error"]["message"], (
                f"{name} must be answered like a wrong key: {answer!r} vs {wrong!r}"
            )


# --- a host with Flask-WTF's CSRFProtect ----------------------------------------------------------


@pytest.mark.parametrize("csrf_after_gate", [False, True], ids=["csrf-before-gate", "csrf-after-gate"])
def test_host_with_csrfprotect(make_host: HostFactory, csrf_after_gate: bool) -> None:
    """CSRFProtect still guards the host's own forms (a POST without csrf_token is refused with
    400), whichever of it and WSGate comes first; webservice.php is exempt: API logins and
    extendsession POST without a form token."""
    app = make_host("cookie", csrf=True, csrf_after_gate=csrf_after_gate)
    browser = app.test_client()

    refused = browser.post("/login", data={"username": "alice", "password": PASSWORDS["alice"]})
    assert refused.status_code == 400, f"/login without csrf_token: {refused.status_code} (expected 400)"
    assert browser.get("/").status_code == 302, "the refused login must not log in"

    token = form_csrf_token(browser.get("/login").get_data(as_text=True))
    logged_in = browser.post("/login", data={"username": "alice", "password": PASSWORDS["alice"], "csrf_token": token})
    assert logged_in.status_code == 302, f"/login with csrf_token: {logged_in.status_code} {logged_in.data!r}"
    assert browser.get("/").get_data(as_text=True) == "hello alice"

    session_name = extended_session(browser)  # a POST to webservice.php without any form token
    assert is_live(app, session_name)
    success(api_login(app, "bob", ACCESS_KEYS["bob"]), "API login (POST) on a CSRFProtect host")

    assert browser.post("/logout").status_code == 400, "/logout without csrf_token must be refused"
    assert is_live(app, session_name)
    assert browser.post("/logout", data={"csrf_token": token}).status_code == 302
    assert not is_live(app, session_name)
    assert_sent_to_login(browser)


# --- a host without Flask-Login -------------------------------------------------------------------


@pytest.mark.parametrize("session_kind", SESSION_KINDS)
def test_host_without_flask_login(make_host: HostFactory, session_kind: str) -> None:
    """gate.login_web / gate.current_web_login / gate.logout_web link a host's own login the same
    way: an API logout of the extended session makes current_web_login() None on the next
    request, and logout_web ends the API sessions it gave."""
    app = make_host(session_kind, plain=True)
    browser = app.test_client()

    assert browser.get("/me").get_json() == {"user_id": None, "username": None}
    signin = browser.post("/signin", data={"username": "alice", "password": PASSWORDS["alice"]})
    assert signin.status_code == 302, f"/signin: {signin.status_code} {signin.data!r}"
    assert browser.get("/me").get_json() == {"user_id": 7, "username": "alice"}

    session_name = extended_session(browser)
    assert is_live(app, session_name)
    success(call(app.test_client(), "logout", sessionName=session_name), "API logout")
    assert browser.get("/me").get_json() == {"user_id": None, "username": None}, (
        "after the API logout of its linked session, current_web_login() must be None"
    )

    browser.post("/signin", data={"username": "alice", "password": PASSWORDS["alice"]})
    second = extended_session(browser)
    assert browser.post("/signout").get_json() == {"was_logged_in": True}
    assert not is_live(app, second), "logout_web must end the API sessions of the login"
    assert browser.get("/me").get_json() == {"user_id": None, "username": None}
    assert browser.post("/signout").get_json() == {"was_logged_in": False}


# --- stale session data ---------------------------------------------------------------------------


@pytest.mark.parametrize("ending", ["host-logout", "api-logout"])
@pytest.mark.parametrize("session_kind", SESSION_KINDS)
def test_stale_session_data_does_not_bring_the_login_back(
    make_host: HostFactory, host_server: fakeredis.FakeServer, session_kind: str, ending: str
) -> None:
    """The browser's session data from before a logout, saved again afterwards (the cookie, and
    for Flask-Session also its data in Redis: what a request in flight during the logout would
    write), names a family that has ended: the browser stays logged out and gets no API
    session."""
    app = make_host(session_kind)
    browser = app.test_client()
    browser_login(browser)
    session_name = extended_session(browser)

    cookie_name = app.config["SESSION_COOKIE_NAME"]
    stale_cookie = session_cookie(app, browser)
    raw = fakeredis.FakeRedis(server=host_server)
    stale_data = {key: raw.get(key) for key in raw.scan_iter(match=f"{FLASK_SESSION_PREFIX}*")}
    if session_kind == "flask-session":
        assert stale_data, "Flask-Session should keep the session data in Redis"

    if ending == "host-logout":
        assert browser.post("/logout").status_code == 302
    else:
        success(call(app.test_client(), "logout", sessionName=session_name), "API logout")
        assert browser.get("/").status_code == 302

    browser.set_cookie(cookie_name, stale_cookie)
    for key, value in stale_data.items():
        raw.set(key, value)

    assert_sent_to_login(browser)
    browser.set_cookie(cookie_name, stale_cookie)
    for key, value in stale_data.items():
        raw.set(key, value)
    assert error_code(extend(browser), "extendsession with stale session data") in NOT_LOGGED_IN
    assert not is_live(app, session_name)

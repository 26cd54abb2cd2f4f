"""The lean path (webservice/api/lean_path.py): cookieless webservice.php requests answered
without Flask's request context, byte for byte as Flask's path answers them, and everything else
left to Flask.

Which path answered is seen by counting calls of the endpoint's Flask view; the same request is
sent both ways (a cookie that names nothing sends it through Flask) with a fixed X-Request-Id,
and the two answers compared whole: status, every header in order, body.
"""

from __future__ import annotations

import gc
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import fakeredis
import pytest
from flask import Flask, signals
from flask.sessions import SecureCookieSessionInterface, SessionInterface
from werkzeug.test import EnvironBuilder

from tests.conftest import TEST_SETTINGS
from tests.host.hostapp import ACCESS_KEYS, create_host_app
from tests.unit.support import TEST_OPERATIONS
from tests.unit.web.support import Env, make_env
from webservice.api.lean_path import LeanPath, opens_outside_flask
from webservice.api.registry import installed_operations
from webservice.standalone import create_app
from webservice.standalone.web_session import SignedCookieSessions
from webservice.store.challenges import login_proof

VIEW = "webservice.webservice_php"


def with_unrelated_cookie(app: Flask) -> Any:
    """A test client that sends a cookie the app does not know: it takes the request through
    Flask, and changes nothing else."""
    client = app.test_client()
    client.set_cookie("unrelated", "1")
    return client


class ViewCalls:
    def __init__(self, app: Flask) -> None:
        self.count = 0
        view = app.view_functions[VIEW]

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return view(*args, **kwargs)

        app.view_functions[VIEW] = counted


def standalone(**settings: Any) -> Flask:
    server = fakeredis.FakeServer()
    return create_app(
        {**TEST_SETTINGS, "CHALLENGE_RATE_LIMIT": 0, **settings},
        redis_client=fakeredis.FakeRedis(server=server, decode_responses=True),
        web_session_client=fakeredis.FakeRedis(server=server),
        operations=[*installed_operations(), *TEST_OPERATIONS],
    )


@pytest.fixture
def app() -> Iterator[Flask]:
    yield standalone()


def live_session(app: Flask, username: str = "alice") -> str:
    gateway = app.extensions["wsgate"]
    user = gateway.users.add(username)
    client = app.test_client()
    token = client.get(
        "/webservice.php", query_string={"operation": "getchallenge", "username": username}
    ).get_json()["result"]["token"]
    answer = client.post(
        "/webservice.php",
        data={"operation": "login", "username": username,
              "accessKey": login_proof(token, user.access_key)},
    ).get_json()  # fmt: skip
    return answer["result"]["sessionName"]


def both_ways(app: Flask, method: str, **request: Any) -> tuple[Any, Any, int]:
    """The same request without a cookie and through Flask: (lean answer, Flask answer, how many
    of the two the Flask view answered)."""
    calls = ViewCalls(app)
    headers = {"X-Request-Id": "fixed-id-1", **request.pop("headers", {})}
    lean = app.test_client().open("/webservice.php", method=method, headers=headers, **request)
    flask = with_unrelated_cookie(app).open(
        "/webservice.php", method=method, headers=headers, **request
    )
    return lean, flask, calls.count


def answer_of(response: Any) -> tuple[str, list[tuple[str, str]], bytes]:
    return response.status, list(response.headers.items()), response.get_data()


def test_the_lean_path_answers_exactly_as_flask_does(app: Flask) -> None:
    session = live_session(app)
    cases: list[tuple[str, dict[str, Any]]] = [
        ("GET", {"query_string": {"operation": "listtypes", "sessionName": session}}),
        ("POST", {"data": {"operation": "listtypes", "sessionName": session}}),
        ("GET", {"query_string": {"operation": "listtypes", "sessionName": session[:-1] + "x"}}),
        ("GET", {"query_string": {"operation": "listtypes"}}),
        ("GET", {"query_string": {"operation": "nosuchoperation"}}),
        ("GET", {}),
        ("HEAD", {"query_string": {"operation": "listtypes", "sessionName": session}}),
        ("OPTIONS", {}),
        ("DELETE", {"query_string": {"operation": "listtypes", "sessionName": session}}),
        ("POST", {"data": json.dumps({"operation": "listtypes", "sessionName": session}),
                  "content_type": "application/json"}),
        ("POST", {"data": "{not json", "content_type": "application/json"}),
        ("POST", {"data": {f"p{i}": "v" for i in range(300)}}),
        ("POST", {"data": {"operation": "listtypes", "x": "v" * 70000}}),
        ("POST", {"data": b"x" * (2 * 1024 * 1024), "content_type": "text/plain"}),
        ("POST", {"query_string": {"operation": "listtypes"}, "data": b"x" * (2 * 1024 * 1024)}),
        ("POST", {"query_string": {"operation": "listtypes"}, "data": b"x" * 10}),
        ("POST", {"query_string": {"operation": "listtypes"}, "data": b"x" * (2 * 1024 * 1024),
                  "content_type": "application/json"}),
        ("GET", {"query_string": {"operation": "probe", "a": "1"}}),
        ("GET", {"query_string": {"operation": "typed", "text": "t", "amount": "nan"}}),
        ("GET", {"query_string": {"operation": "boom"}}),
        ("POST", {"data": {"operation": "login", "username": "alice", "accessKey": "0" * 32}}),
    ]  # fmt: skip
    for method, request in cases:
        lean, flask, flask_answered = both_ways(app, method, **request)
        assert answer_of(lean) == answer_of(flask), (method, request)
        assert flask_answered >= 1


@pytest.mark.parametrize(
    "query",
    [
        {"operation": "listtypes"},
        {"operation": "listtypes", "sessionName": "A" * 22 + "." + "B" * 43},
        {"operation": "nosuchoperation"},
        {"operation": "getchallenge"},
        {"operation": "login", "username": "alice", "accessKey": "0" * 32},
        {f"p{index}": "1" for index in range(1000)},
    ],
    ids=[
        "live session", "dead session", "unknown operation", "missing parameter",
        "failed login", "too many parameters",
    ],
)
def test_a_lean_request_leaves_nothing_for_the_cyclic_garbage_collector(
    app: Flask, query: dict[str, str]
) -> None:
    """Werkzeug's request keeps itself in its environ (a reference cycle per request): in a
    loaded worker, full collections of the cycles' survivors stalled it for tens of ms. A
    refused request's error kept its traceback, which holds the frame that held the error (and
    those of the errors it was raised from: marshmallow's, a refused login's)."""
    query = {"sessionName": live_session(app), **query}
    environ = EnvironBuilder(path="/webservice.php", query_string=query).get_environ()

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        assert status == "200 OK"

    requests = 200
    gc.collect()
    gc.disable()
    try:
        for _ in range(requests):
            b"".join(app(dict(environ), start_response))
        unreachable = gc.collect()
    finally:
        gc.enable()
    assert unreachable < requests


def test_cookieless_api_operations_skip_the_flask_view(app: Flask) -> None:
    session = live_session(app)
    calls = ViewCalls(app)
    client = app.test_client()
    assert client.get("/webservice.php", query_string={
        "operation": "listtypes", "sessionName": session}).get_json()["success"]  # fmt: skip
    assert client.post("/webservice.php", data={
        "operation": "logout", "sessionName": session}).get_json()["success"]  # fmt: skip
    assert calls.count == 0
    assert client.get("/webservice.php", query_string={
        "operation": "listtypes", "sessionName": session}).get_json()["error"]["code"] == (
        "AUTHENTICATION_REQUIRED")  # fmt: skip
    assert calls.count == 0


def test_a_plugin_that_reads_flasks_request_is_handed_to_flask_with_its_body(app: Flask) -> None:
    calls = ViewCalls(app)
    answer = app.test_client().post(
        "/webservice.php", data={"operation": "probe", "a": "1", "b": "two"}
    ).get_json()
    assert answer["result"]["params"] == {"a": "1", "b": "two"}
    assert calls.count == 1


def test_with_sessions_in_redis_anything_with_a_cookie_goes_through_flask(app: Flask) -> None:
    calls = ViewCalls(app)
    with_unrelated_cookie(app).get("/webservice.php", query_string={"operation": "listtypes"})
    assert calls.count == 1


# --- A browser's requests, with the signed-cookie session ---------------------------------------

OWN_ORIGIN = "http://localhost"
_SESSION_NAME = re.compile(rb'"sessionName":"[^"]+"')


@contextmanager
def flask_path(app: Flask) -> Iterator[None]:
    """The lean path passes every request on to Flask."""
    lean: Any = app.wsgi_app
    while not isinstance(lean, LeanPath):
        lean = lean.app  # the middlewares around it
    lean._usable = (False, False)
    try:
        yield
    finally:
        lean._usable = None


def web_login(env: Env, username: str = "alice") -> tuple[str, str]:
    """Logs ``username`` in to the web UI: (its session cookie, its page's CSRF token)."""
    env.add_user(username)
    browser = env.browser()
    browser.login(username)
    token = browser.csrf_token()
    return f"{env.cookie_name}={browser.cookie}", token


def sent_both_ways(app: Flask, headers: dict[str, str], **request: Any) -> tuple[Any, Any, int]:
    """The same request with a cookie, on this app's way (the lean path, when it takes it) and
    Flask's: (this way's answer, Flask's, how many of the two the Flask view answered)."""
    calls = ViewCalls(app)
    headers = {"X-Request-Id": "fixed-id-2", **headers}
    first = app.test_client(use_cookies=False).post("/webservice.php", headers=headers, **request)
    with flask_path(app):
        second = app.test_client(use_cookies=False).post(
            "/webservice.php", headers=headers, **request
        )
    return first, second, calls.count


def comparable(response: Any) -> tuple[str, list[tuple[str, str]], bytes]:
    """The answer, but for the new session's name (different on every call)."""
    status, headers, body = answer_of(response)
    return status, headers, _SESSION_NAME.sub(b'"sessionName":"..."', body)


@pytest.fixture
def cookie_env() -> Env:
    return make_env({"WEB_SESSIONS": "cookie"})


def test_a_browsers_extendsession_takes_the_lean_path_and_answers_as_flask_does(
    cookie_env: Env,
) -> None:
    app = cookie_env.app
    cookie, token = web_login(cookie_env)
    stranger, _ = web_login(cookie_env, "bob")
    sign = app.session_interface.get_signing_serializer(app).dumps  # type: ignore[attr-defined]
    visitor = f"{app.config['SESSION_COOKIE_NAME']}={sign({'csrf_token': 'x' * 40})}"
    forged = f"{app.config['SESSION_COOKIE_NAME']}={'x' * 43}"
    extend = {"data": {"operation": "extendsession"}}
    session = live_session(app, "carol")
    cases: list[tuple[dict[str, str], dict[str, Any], str]] = [
        ({"Cookie": cookie, "Origin": OWN_ORIGIN}, extend, "ok"),
        ({"Cookie": stranger, "Origin": OWN_ORIGIN, "X-CSRFToken": token}, extend, "ok"),
        ({"Cookie": cookie, "Origin": "https://evil.example"}, extend, "ACCESS_DENIED"),
        ({"Cookie": visitor, "Origin": OWN_ORIGIN}, extend, "AUTHENTICATION_FAILURE"),
        ({"Cookie": forged, "Origin": OWN_ORIGIN}, extend, "AUTHENTICATION_FAILURE"),
        ({"Cookie": "unrelated=1", "Origin": OWN_ORIGIN}, extend, "AUTHENTICATION_REQUIRED"),
        # An in-page script's API calls carry the cookie too: the session data is never read.
        ({"Cookie": cookie}, {"data": {"operation": "listtypes", "sessionName": session}}, "ok"),
        ({"Cookie": cookie}, {"data": {"operation": "listtypes"}}, "AUTHENTICATION_REQUIRED"),
    ]
    for headers, request, code in cases:
        lean, flask, flask_answered = sent_both_ways(app, headers, **request)
        assert comparable(lean) == comparable(flask), (headers, request)
        answer = lean.get_json()
        assert (answer["error"]["code"] if not answer["success"] else "ok") == code, answer
        assert flask_answered == 1, (headers, request)
    extended, _, _ = sent_both_ways(app, {"Cookie": cookie, "Origin": OWN_ORIGIN}, **extend)
    assert extended.headers["Vary"] == "Cookie"


def test_a_browser_whose_login_ended_is_told_so_with_its_cookie_changed_as_flask_does(
    cookie_env: Env,
) -> None:
    app = cookie_env.app
    cookie, _ = web_login(cookie_env)
    gateway = app.extensions["wsgate"]
    for family in gateway.redis.keys(f"{gateway.keys.prefix}:{{*}}:f"):
        gateway.redis.delete(family)
    lean, flask, flask_answered = sent_both_ways(
        app, {"Cookie": cookie, "Origin": OWN_ORIGIN}, data={"operation": "extendsession"}
    )
    assert flask_answered == 1
    assert lean.get_json()["error"]["code"] == "AUTHENTICATION_FAILURE"

    def without_cookie_value(response: Any) -> Any:
        status, headers, body = answer_of(response)
        masked = [(n, re.sub(r"^([^=]+)=[^;]*", r"\1=...", v) if n == "Set-Cookie" else v)
                  for n, v in headers]  # fmt: skip
        return status, masked, body

    assert without_cookie_value(lean) == without_cookie_value(flask)
    # The login is gone from the browser's session data, which keeps the rest.
    renewed = lean.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    data = app.session_interface.get_signing_serializer(app).loads(renewed)  # type: ignore[attr-defined]
    assert "_wsgate_login" not in data and "csrf_token" in data


def test_a_permanent_sessions_cookie_is_refreshed_as_flask_does(cookie_env: Env) -> None:
    app = cookie_env.app
    app.config["SESSION_REFRESH_EACH_REQUEST"] = True
    sign = app.session_interface.get_signing_serializer(app).dumps  # type: ignore[attr-defined]
    cookie = f"{app.config['SESSION_COOKIE_NAME']}={sign({'_permanent': True, 'theme': 'dark'})}"
    lean, flask, flask_answered = sent_both_ways(
        app, {"Cookie": cookie}, data={"operation": "listtypes"}
    )
    assert flask_answered == 1
    assert lean.headers.getlist("Set-Cookie") and flask.headers.getlist("Set-Cookie")
    assert [name for name, _ in lean.headers.items()] == [name for name, _ in flask.headers.items()]
    assert lean.get_data() == flask.get_data()


def test_without_origin_the_csrf_token_is_checked_by_flasks_path(cookie_env: Env) -> None:
    app = cookie_env.app
    cookie, token = web_login(cookie_env)
    calls = ViewCalls(app)
    client = app.test_client(use_cookies=False)
    extend = {"operation": "extendsession"}
    answer = client.post("/webservice.php", data=extend,
                         headers={"Cookie": cookie, "X-CSRFToken": token}).get_json()  # fmt: skip
    assert answer["success"], answer
    assert calls.count == 1
    refused = client.post("/webservice.php", data=extend,
                          headers={"Cookie": cookie, "X-CSRFToken": "forged"}).get_json()  # fmt: skip
    assert refused["error"]["code"] == "ACCESS_DENIED"
    assert calls.count == 2
    client.post("/webservice.php", data=extend, headers={"Cookie": cookie, "Origin": OWN_ORIGIN})
    assert calls.count == 2


def test_with_a_cookie_flasks_path_stays_where_a_hook_reads_the_session() -> None:
    """Flask-Login's remember-me refresh reads the session on every answer (``Vary: Cookie``)."""
    host = create_host_app(redis_client=fakeredis.FakeRedis(decode_responses=True))
    calls = ViewCalls(host)
    client = host.test_client(use_cookies=False)
    client.get("/webservice.php", query_string={"operation": "listtypes"})
    assert calls.count == 0
    client.get("/webservice.php", query_string={"operation": "listtypes"},
               headers={"Cookie": "session=anything"})  # fmt: skip
    assert calls.count == 1


def test_with_a_cookie_flasks_path_stays_until_the_app_has_its_signing_key() -> None:
    app = standalone(WEB_SESSIONS="cookie", SECRET_KEY=None)
    calls = ViewCalls(app)
    client = app.test_client(use_cookies=False)
    cookie = {"Cookie": f"{app.config['SESSION_COOKIE_NAME']}=anything"}
    client.get("/webservice.php", query_string={"operation": "listtypes"}, headers=cookie)
    assert calls.count == 1  # and its hook loaded the shared key from Redis
    assert app.secret_key
    client.get("/webservice.php", query_string={"operation": "listtypes"}, headers=cookie)
    assert calls.count == 1


def test_trusted_hosts_keep_flasks_path_and_its_refusal_of_other_hosts() -> None:
    """Flask refuses a Host that TRUSTED_HOSTS does not name (the envelope says so); the lean
    path, which never asks, used to answer the operation."""
    app = standalone(TRUSTED_HOSTS=["gateway.example"])
    client = app.test_client()
    query = {"operation": "listtypes"}
    refused = client.get("/webservice.php", query_string=query, headers={"Host": "evil.example"})
    assert refused.get_json()["error"] == {
        "code": "INVALID_PARAMETER",
        "message": "Malformed request: Host 'evil.example' is not trusted.",
    }
    served = client.get("/webservice.php", query_string=query, headers={"Host": "gateway.example"})
    assert served.get_json()["error"]["code"] == "AUTHENTICATION_REQUIRED"


def test_an_unknown_hook_or_a_request_signal_keeps_flasks_path() -> None:
    hooked = standalone()
    seen: list[str] = []
    hooked.before_request(lambda: seen.append("hook"))
    calls = ViewCalls(hooked)
    hooked.test_client().get("/webservice.php", query_string={"operation": "listtypes"})
    assert (calls.count, seen) == (1, ["hook"])

    plain = standalone()
    calls = ViewCalls(plain)

    def listener(sender: Any, **extra: Any) -> None:
        seen.append("signal")

    signals.request_started.connect(listener)
    try:
        plain.test_client().get("/webservice.php", query_string={"operation": "listtypes"})
    finally:
        signals.request_started.disconnect(listener)
    assert (calls.count, seen) == (1, ["hook", "signal"])
    plain.test_client().get("/webservice.php", query_string={"operation": "listtypes"})
    assert calls.count == 1


def test_lean_path_off() -> None:
    app = standalone(LEAN_PATH=False)
    calls = ViewCalls(app)
    app.test_client().get("/webservice.php", query_string={"operation": "listtypes"})
    assert calls.count == 1


@pytest.mark.parametrize("csrf", [False, True])
def test_a_host_app_with_flask_login_and_csrfprotect_takes_the_lean_path(csrf: bool) -> None:
    host = create_host_app(
        redis_client=fakeredis.FakeRedis(decode_responses=True), csrf=csrf
    )
    calls = ViewCalls(host)
    client = host.test_client()
    token = client.get("/webservice.php", query_string={
        "operation": "getchallenge", "username": "alice"}).get_json()["result"]["token"]  # fmt: skip
    answer = client.post("/webservice.php", data={
        "operation": "login", "username": "alice",
        "accessKey": login_proof(token, ACCESS_KEYS["alice"])}).get_json()  # fmt: skip
    assert answer["success"], answer
    assert calls.count == 0


def test_a_host_that_wrapped_wsgi_app_first_keeps_flasks_path() -> None:
    from werkzeug.middleware.proxy_fix import ProxyFix
    from webservice import WSGate

    host = Flask(__name__)
    host.config.update(TEST_SETTINGS)
    host.wsgi_app = ProxyFix(host.wsgi_app)  # type: ignore[method-assign]
    WSGate(host, redis_client=fakeredis.FakeRedis(decode_responses=True))
    calls = ViewCalls(host)
    host.test_client().get("/webservice.php", query_string={"operation": "listtypes"})
    assert calls.count == 1


def test_a_result_json_cannot_carry_is_an_internal_error_both_ways() -> None:
    from webservice.plugin import operation

    @operation("surrogate", needs_session=False, uses_flask_request=False)
    def surrogate(context: Any, params: dict[str, Any]) -> str:
        return "half of a pair: \ud800"

    server = fakeredis.FakeServer()
    app = create_app(
        TEST_SETTINGS,
        redis_client=fakeredis.FakeRedis(server=server, decode_responses=True),
        web_session_client=fakeredis.FakeRedis(server=server),
        operations=[*installed_operations(), surrogate],
    )
    lean, flask, _ = both_ways(app, "GET", query_string={"operation": "surrogate"})
    assert answer_of(lean) == answer_of(flask)
    assert lean.get_json()["error"]["code"] == "INTERNAL_SERVER_ERROR"


def test_after_a_lean_request_hooks_can_no_longer_be_added_as_after_a_flask_one(app: Flask) -> None:
    app.test_client().get("/webservice.php", query_string={"operation": "listtypes"})
    with pytest.raises(AssertionError, match="can no longer be called"):
        app.before_request(lambda: None)


def test_a_session_interface_opens_outside_flask_only_if_it_is_flasks_signed_cookie_or_says_so():
    class Unknown(SecureCookieSessionInterface):
        def open_session(self, app, request):  # type: ignore[no-untyped-def]
            return super().open_session(app, request)

    class Declared(Unknown):
        opens_outside_flask = True

    assert opens_outside_flask(SecureCookieSessionInterface())
    assert opens_outside_flask(SignedCookieSessions())
    assert not opens_outside_flask(Unknown())
    assert opens_outside_flask(Declared())
    assert not opens_outside_flask(SessionInterface())

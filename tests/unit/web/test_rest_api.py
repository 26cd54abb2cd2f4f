"""The REST session API under /v1 (webservice/rest): logout by bearer session or cookie, my
sessions listed and ended, CSRF rules for the cookie, problem details for every error."""

from __future__ import annotations

import re
from datetime import datetime

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from tests.unit.web.support import OWN_ORIGIN, Env, family_of, make_env, member_of
from tests.unit.web.test_audit import entries
from webservice.store.tokens import handle_of

PROBLEM = "application/problem+json"
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def bearer(session_name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {session_name}"}


def handle(session_name: str) -> str:
    return handle_of(family_of(session_name), member_of(session_name))


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    body = response.get_json(force=True)
    assert body["status"] == status and body["type"] == "about:blank"
    assert body["title"] and body["detail"]
    assert_security_headers(response)
    return body


def assert_security_headers(response) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (name, dict(response.headers))


def assert_session_cookie_expired(env: Env, response) -> None:
    cookies = [
        header
        for header in response.headers.getlist("Set-Cookie")
        if header.startswith(f"{env.cookie_name}=")
    ]
    assert cookies, dict(response.headers)
    assert all("Expires=Thu, 01 Jan 1970" in cookie for cookie in cookies), cookies


# --- logout ----------------------------------------------------------------------------------


def test_post_logout_with_a_bearer_session_ends_its_family(env, alice):
    session_name = env.api_login(alice)
    other = env.api_login(alice)
    response = env.api().post("/v1/auth/logout", headers=bearer(session_name))
    assert response.status_code == 200
    assert response.get_json() == {"message": "Logged out successfully"}
    assert_security_headers(response)
    assert_session_cookie_expired(env, response)
    assert not env.alive(session_name)
    assert env.alive(other), "another login of the same user is another family"


def test_delete_session_with_the_cookie_ends_the_web_login_and_its_linked_sessions(env, alice):
    browser = env.browser()
    browser.login("alice")
    linked = browser.extended_session()
    family = browser.family_id
    response = browser.client.delete("/v1/auth/session")
    assert response.status_code == 204 and response.get_data() == b""
    assert "Content-Type" not in response.headers
    assert_security_headers(response)
    assert_session_cookie_expired(env, response)
    assert not env.alive(linked)
    assert not browser.logged_in()
    assert family not in env.families()


def test_logout_by_a_linked_api_session_logs_the_browser_out(env, alice):
    browser = env.browser()
    browser.login("alice")
    linked = browser.extended_session()
    response = env.api().delete("/v1/auth/session", headers=bearer(linked))
    assert response.status_code == 204
    assert not browser.logged_in()


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-a-session"},
        {"Authorization": "Basic YWxpY2U6c2VjcmV0"},
        {"Authorization": "Bearer "},
    ],
    ids=["nothing", "garbage", "other-scheme", "empty"],
)
@pytest.mark.parametrize("method,path,status", [("POST", "/v1/auth/logout", 200), ("DELETE", "/v1/auth/session", 204)])
def test_logout_without_a_live_session_still_succeeds(env, alice, headers, method, path, status):
    kept = env.api_login(alice)
    response = env.api().open(path, method=method, headers=headers)
    assert response.status_code == status
    assert_session_cookie_expired(env, response)
    assert env.alive(kept)


def test_a_retried_logout_succeeds(env, alice):
    session_name = env.api_login(alice)
    client = env.api()
    for _ in range(2):
        assert client.delete("/v1/auth/session", headers=bearer(session_name)).status_code == 204
    assert not env.alive(session_name)


def test_logout_needs_no_csrf_proof_but_only_ends_the_callers_own(env, alice, bob):
    browser = env.browser()
    browser.login("alice")
    bobs = env.api_login(bob)
    response = browser.client.post(
        "/v1/auth/logout", headers={"Origin": "https://evil.example"}
    )
    assert response.status_code == 200
    assert not browser.logged_in()
    assert env.alive(bobs)


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "PATCH", "DELETE"])
def test_logout_is_never_reachable_by_another_method(env, alice, method):
    session_name = env.api_login(alice)
    response = env.api().open("/v1/auth/logout", method=method, headers=bearer(session_name))
    assert response.status_code == 405
    assert response.headers["Allow"] == "OPTIONS, POST"
    if method != "HEAD":
        assert_problem(response, 405)
    assert env.alive(session_name)


def test_options_lists_the_methods_and_grants_no_cors(env):
    response = env.api().options(
        "/v1/me/sessions", headers={"Origin": "https://evil.example"}
    )
    assert response.status_code == 204
    assert response.headers["Allow"] == "DELETE, GET, HEAD, OPTIONS"
    assert not [h for h, _ in response.headers.items() if h.lower().startswith("access-control-")]


def test_logout_is_in_the_audit_trail(env, alice):
    session_name = env.api_login(alice)
    before = len(entries(env))
    env.api().post("/v1/auth/logout", headers=bearer(session_name))
    new = entries(env)[before:]
    assert [(e["event"], e["via"], e["user"], e["handle"]) for e in new] == [
        ("logout", "rest", "alice", handle(session_name))
    ]
    assert session_name.split(".")[1] not in str(new)


# --- my sessions -------------------------------------------------------------------------------


def test_my_sessions_are_listed_newest_first_with_the_callers_marked(env, alice, bob):
    browser = env.browser(address="198.51.100.7")
    browser.login("alice")
    linked = browser.extended_session()
    session_name = env.api_login(alice)
    env.api_login(bob)
    response = env.api().get("/v1/me/sessions", headers=bearer(session_name))
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert_security_headers(response)
    data = response.get_json()["data"]
    assert [item["id"] for item in data] == [
        handle(session_name),
        handle(linked),
        handle_of(browser.family_id, browser.member),
    ]
    assert [item["current"] for item in data] == [True, False, False]
    assert [item["kind"] for item in data] == ["api", "api", "web"]
    assert [item["linked"] for item in data] == [False, True, True]
    assert data[2]["ipAddress"] == "198.51.100.7"
    for item in data:
        assert set(item) == {
            "id", "kind", "linked", "current", "ipAddress", "userAgent",
            "createdAt", "lastActivityAt", "expiresAt",
        }
        times = [item["createdAt"], item["lastActivityAt"], item["expiresAt"]]
        assert all(RFC3339.match(value) for value in times), times
        created, used, expires = (datetime.fromisoformat(value) for value in times)
        assert created <= used < expires
    assert session_name not in response.get_data(as_text=True)


def test_the_cookie_lists_too_and_marks_the_web_login_current(env, alice):
    browser = env.browser()
    browser.login("alice")
    response = browser.client.get("/v1/me/sessions")
    assert response.status_code == 200
    (item,) = response.get_json()["data"]
    assert item["current"] and item["kind"] == "web"


def test_head_of_my_sessions_has_no_body(env, alice):
    session_name = env.api_login(alice)
    response = env.api().head("/v1/me/sessions", headers=bearer(session_name))
    assert response.status_code == 200 and response.get_data() == b""


def test_listing_without_a_session_is_401(env):
    response = env.api().get("/v1/me/sessions")
    assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="wsgate"'


@pytest.mark.parametrize(
    "authorization,error",
    [
        ("Bearer not-a-session", "invalid_token"),
        ("Bearer AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "invalid_token"),
        ("Basic YWxpY2U6c2VjcmV0", "invalid_request"),
        ("Bearer", "invalid_request"),
    ],
)
def test_a_bad_bearer_is_401_and_says_why(env, alice, authorization, error):
    browser = env.browser()
    browser.login("alice")  # a live cookie does not rescue a bad bearer
    response = browser.client.get("/v1/me/sessions", headers={"Authorization": authorization})
    assert_problem(response, 401)
    assert f'error="{error}"' in response.headers["WWW-Authenticate"]


def test_a_logged_out_bearer_is_refused(env, alice):
    session_name = env.api_login(alice)
    env.api().post("/v1/auth/logout", headers=bearer(session_name))
    assert_problem(env.api().get("/v1/me/sessions", headers=bearer(session_name)), 401)


def test_end_one_of_my_sessions_ends_its_family(env, alice):
    browser = env.browser()
    browser.login("alice")
    linked = browser.extended_session()
    caller = env.api_login(alice)
    web_handle = handle_of(browser.family_id, browser.member)
    response = env.api().delete(f"/v1/me/sessions/{web_handle}", headers=bearer(caller))
    assert response.status_code == 204
    assert not env.alive(linked) and not browser.logged_in()
    assert env.alive(caller)


@pytest.mark.parametrize("kind", ["someone-elses", "unknown", "malformed"])
def test_ending_a_session_that_is_not_mine_does_nothing_and_says_204(env, alice, bob, kind):
    caller = env.api_login(alice)
    bobs = env.api_login(bob)
    target = {
        "someone-elses": handle(bobs),
        "unknown": "AAAAAAAAAAAAAAAAAAAAAA:AAAAAAAA",
        "malformed": "x" * 300,
    }[kind]
    before = len(entries(env))
    response = env.api().delete(f"/v1/me/sessions/{target}", headers=bearer(caller))
    assert response.status_code == 204
    assert env.alive(bobs) and env.alive(caller)
    assert entries(env)[before:] == []


def test_ending_my_own_family_by_id_logs_the_browser_out(env, alice):
    browser = env.browser()
    browser.login("alice")
    own = handle_of(browser.family_id, browser.member)
    response = browser.client.delete(
        f"/v1/me/sessions/{own}", headers={"X-CSRFToken": browser.csrf_token()}
    )
    assert response.status_code == 204
    assert_session_cookie_expired(env, response)
    assert not browser.logged_in()


def test_end_all_ends_the_callers_too(env, alice, bob):
    caller = env.api_login(alice)
    others = [env.api_login(alice) for _ in range(3)]
    bobs = env.api_login(bob)
    response = env.api().delete("/v1/me/sessions", headers=bearer(caller))
    assert response.status_code == 204
    assert not any(env.alive(name) for name in [caller, *others])
    assert env.alive(bobs)


def test_end_all_but_current_keeps_the_callers_family(env, alice):
    browser = env.browser()
    browser.login("alice")
    linked = browser.extended_session()
    others = [env.api_login(alice) for _ in range(2)]
    response = env.api().delete("/v1/me/sessions?keep=current", headers=bearer(linked))
    assert response.status_code == 204
    assert "Set-Cookie" not in response.headers
    assert env.alive(linked) and browser.logged_in()
    assert not any(env.alive(name) for name in others)


def test_keep_takes_only_current(env, alice):
    caller = env.api_login(alice)
    other = env.api_login(alice)
    response = env.api().delete("/v1/me/sessions?keep=everything", headers=bearer(caller))
    assert_problem(response, 400)
    assert env.alive(caller) and env.alive(other)


# --- CSRF: the cookie ends sessions only from the app's own pages ---------------------------------


@pytest.mark.parametrize("path", ["/v1/me/sessions", "/v1/me/sessions/{other}"])
@pytest.mark.parametrize(
    "proof,allowed",
    [
        ({}, False),
        ({"Origin": "https://evil.example"}, False),
        ({"Origin": "https://evil.example", "X-CSRFToken": "page"}, False),
        ({"Origin": "null"}, False),
        ({"X-CSRFToken": "forged"}, False),
        ({"X-CSRFToken": "page"}, True),
        ({"Origin": OWN_ORIGIN}, True),
    ],
    ids=["none", "foreign-origin", "foreign-origin-with-token", "null-origin", "forged-token",
         "token", "own-origin"],
)
def test_cookie_requests_that_end_sessions_need_same_origin_proof(env, alice, path, proof, allowed):
    browser = env.browser()
    browser.login("alice")
    other = env.api_login(alice)
    headers = dict(proof)
    if headers.get("X-CSRFToken") == "page":
        headers["X-CSRFToken"] = browser.csrf_token()
    response = browser.client.delete(path.format(other=handle(other)), headers=headers)
    if allowed:
        assert response.status_code == 204
        assert not env.alive(other)
    else:
        assert_problem(response, 403)
        assert env.alive(other) and browser.logged_in()


def test_a_bearer_needs_no_csrf_proof(env, alice):
    caller = env.api_login(alice)
    other = env.api_login(alice)
    response = env.api().delete(
        f"/v1/me/sessions/{handle(other)}",
        headers={**bearer(caller), "Origin": "https://evil.example"},
    )
    assert response.status_code == 204
    assert not env.alive(other)


def test_the_hosts_csrf_protection_does_not_refuse_the_api(env, alice):
    """The standalone server's CSRFProtect (forms) leaves /v1 to its own rules."""
    session_name = env.api_login(alice)
    for method, path in (("POST", "/v1/auth/logout"), ("DELETE", "/v1/me/sessions")):
        response = env.api().open(path, method=method, headers=bearer(env.api_login(alice)))
        assert response.status_code in (200, 204), response.get_data(as_text=True)
    assert not env.alive(session_name)


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/me/nothing", "/v1/auth/login", "/v1/me/sessions/a/b"])
def test_unknown_paths_are_404_problems(env, path):
    assert_problem(env.api().get(path), 404)


def test_a_large_body_is_413_and_nothing_ends(env, alice):
    session_name = env.api_login(alice)
    limit = env.gateway.settings["MAX_CONTENT_LENGTH"]
    response = env.api().post(
        "/v1/auth/logout", headers=bearer(session_name), data=b"x" * (limit + 1)
    )
    assert_problem(response, 413)
    assert env.alive(session_name)


def test_redis_down_is_503_with_retry_after(env, alice, monkeypatch):
    session_name = env.api_login(alice)

    def down(*args, **kwargs):
        raise RedisConnectionError("connection refused")

    monkeypatch.setattr(env.gateway.sessions, "validate", down)
    body = assert_problem(
        env.api().get("/v1/me/sessions", headers=bearer(session_name)), 503
    )
    assert "unreachable" in body["detail"]


def test_a_host_rate_limit_is_answered_as_a_problem(env, alice):
    from flask import abort

    @env.app.before_request
    def limited():
        abort(429)

    response = env.api().post("/v1/auth/logout")
    assert_problem(response, 429)


def test_the_api_can_be_turned_off():
    env = make_env({"REST_ENABLED": False})
    assert env.api().post("/v1/auth/logout").status_code == 404
    paths = env.api().get("/openapi.json").get_json()["paths"]
    assert not [path for path in paths if path.startswith("/v1")]


def test_the_openapi_document_describes_the_api(env):
    document = env.api().get("/openapi.json").get_json()
    paths = document["paths"]
    assert set(paths["/v1/me/sessions"]) == {"get", "delete"}
    assert set(paths["/v1/auth/logout"]) == {"post"}
    assert set(paths["/v1/auth/session"]) == {"delete"}
    assert set(paths["/v1/me/sessions/{id}"]) == {"delete"}
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearerSession"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schemes["bearerSession"]["description"],
    }
    assert schemes["webSession"]["name"] == env.cookie_name
    assert "/webservice.php" in paths


@pytest.mark.parametrize("method", ["TRACE", "QUERY", "PROPFIND"])
def test_a_method_no_route_takes_is_a_405_problem(env, method):
    response = env.api().open("/v1/me/sessions", method=method)
    assert_problem(response, 405)
    assert response.headers["Allow"] == "DELETE, GET, HEAD, OPTIONS"
    envelope = env.api().open("/webservice.php", method=method)
    assert envelope.get_json()["error"]["code"] == "METHOD_NOT_ALLOWED"

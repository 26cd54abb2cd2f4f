"""The web UI: logging in and out, CSRF, the session cookie, the home and sessions pages."""

from __future__ import annotations

import re
import secrets

import msgspec
import pytest

from tests.unit.support import envelope
from tests.unit.web.support import (
    API_AGENT,
    BROWSER_AGENT,
    ENDPOINT,
    PASSWORD,
    WEB_LOGIN_KEY,
    Env,
    cookie_attributes,
    family_of,
    make_env,
    member_of,
    session_items,
    set_cookie_headers,
)

STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"


def web_key(env: Env, sid: str) -> str:
    key = env.web_key(sid)
    assert key.startswith(env.gateway.keys.web_session_prefix()), key
    return key


# --- Logged out --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/sessions"])
def test_logged_out_pages_redirect_to_login(env, path):
    response = env.browser().get(path)
    assert response.status_code == 302
    assert response.location == "/login"


def test_login_form_fields(env):
    browser = env.browser()
    response = browser.get("/login")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    form = re.search(r'<form method="post" action="/login">(.*?)</form>', page, re.S)
    assert form, page
    names = re.findall(r'<input[^>]*\bname="([^"]+)"', form.group(1))
    assert sorted(names) == ["csrf_token", "password", "username"]
    assert re.search(r'<input[^>]*name="password"[^>]*type="password"', form.group(1))
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.group(1)).group(1)
    assert token == browser.csrf_token()


def test_login_page_when_logged_in_goes_home(env, alice):
    browser = env.browser()
    browser.login("alice")
    response = browser.get("/login")
    assert response.status_code == 302 and response.location == "/"


def test_login_with_a_real_argon2_password(env):
    """The one login through the directory's own (slow) password hashing."""
    env.gateway.users.add("carol", "a real password")
    browser = env.browser()
    browser.login("carol", "a real password")
    assert browser.logged_in()


def test_failed_logins_all_look_the_same_and_log_nobody_in(env, alice):
    env.add_user("inactive", active=False)
    env.add_user("nopassword", password=None)
    browser = env.browser()
    token = browser.csrf_token()
    before = env.snapshot()
    pages = {}
    for username, password in [
        ("alice", "wrong password"),
        ("nobody", PASSWORD),
        ("inactive", PASSWORD),
        ("nopassword", PASSWORD),
        ("nopassword", ""),
        ("no such user!", PASSWORD),
    ]:
        # One address each: more failures than LOGIN_ADDRESS_FAILURE_LIMIT from one would be refused.
        browser.client.environ_base["REMOTE_ADDR"] = f"192.0.2.{len(pages) + 1}"
        response = browser.post("/login", token=token, username=username, password=password)
        assert response.status_code == 401, (username, response.status_code)
        page = response.get_data(as_text=True)
        assert "Invalid username or password" in page
        # The page tells nothing else apart: only the echoed username differs.
        page = page.replace(f'value="{username}"', 'value="?"')
        pages[(username, password)] = re.sub(r'"[A-Za-z0-9_.-]{40,}"', '"token"', page)
        assert not browser.logged_in()
    assert len(set(pages.values())) == 1
    response = browser.post("/login", token=token, username="", password=PASSWORD)
    assert response.status_code == 401
    assert "Invalid username or password" in response.get_data(as_text=True)
    assert env.families() == set()
    assert env.snapshot() == before


# --- CSRF --------------------------------------------------------------------------------------


def _bad_tokens(browser) -> list[str | None]:
    good = browser.csrf_token()
    return [None, "", "not-a-token", good[:-2] + ("AA" if not good.endswith("AA") else "BB")]


def _assert_csrf_refused(env: Env, browser, path: str, **data) -> None:
    for token in _bad_tokens(browser):
        before = env.snapshot()
        response = browser.post(path, token=token, **data)
        assert response.status_code == 400, (path, token, response.status_code)
        page = response.get_data(as_text=True)
        assert "Nothing was changed" in page
        assert env.snapshot() == before, (path, token)


def test_login_without_a_valid_csrf_token_is_refused(env, alice):
    browser = env.browser()
    _assert_csrf_refused(env, browser, "/login", username="alice", password=PASSWORD)
    assert not browser.logged_in()
    assert env.families() == set()


#: A multipart form with a part whose Content-Disposition names nothing (Werkzeug: name None).
NAMELESS_PART = b"--XX\r\nContent-Disposition: form-data\r\n\r\nvalue\r\n--XX--\r\n"


@pytest.mark.parametrize("path", ["/login", "/logout", "/sessions/end", "/"])
def test_a_form_part_without_a_name_is_a_bad_request_not_an_error(env, alice, path):
    """Flask-WTF's CSRF check failed on it with an AttributeError (a 500); found by the fuzzer."""
    browser = env.browser()
    browser.login("alice")
    before = env.snapshot()
    response = browser.client.post(
        path, data=NAMELESS_PART, headers={"Content-Type": "multipart/form-data; boundary=XX"}
    )
    assert response.status_code == 400
    assert "a part without a name" in response.get_data(as_text=True)
    assert env.snapshot() == before
    # webservice.php reads such a form itself: the envelope, as for any other form.
    answer = envelope(
        env.api().post(
            ENDPOINT,
            data=NAMELESS_PART,
            headers={"Content-Type": "multipart/form-data; boundary=XX"},
        )
    )
    assert answer["error"]["code"] == "UNKNOWN_OPERATION"


@pytest.mark.parametrize(
    "path", ["/logout", "/sessions/end", "/sessions/end-others", "/sessions/end-all"]
)
def test_logged_in_posts_without_a_valid_csrf_token_are_refused(env, alice, path):
    browser = env.browser()
    browser.login("alice")
    other = env.api_login(alice)
    data = {}
    if path == "/sessions/end":
        data["handle"] = f"{family_of(other)}:{member_of(other)[:8]}"
    _assert_csrf_refused(env, browser, path, **data)
    assert browser.logged_in()
    assert env.alive(other)


# --- Logging in: the session id and its cookie ---------------------------------------------------


def test_login_rotates_the_session_id(env, alice):
    browser = env.browser()
    browser.csrf_token()
    before = browser.cookie
    assert before and env.raw.exists(web_key(env, before))
    browser.login("alice")
    after = browser.cookie
    assert after and after != before
    assert not env.raw.exists(web_key(env, before))
    assert env.raw.exists(web_key(env, after))
    # The cookie's id is the root member of the new family; the old id is nothing.
    family = env.family(browser.family_id)
    assert family["r"] == browser.member
    assert family["u"] == str(alice.id) and family["n"] == "alice"


def test_the_old_session_id_is_not_logged_in(env, alice):
    browser = env.browser()
    browser.csrf_token()
    old = browser.cookie
    browser.login("alice")
    stale = env.browser()
    stale.set_cookie(old)
    assert not stale.logged_in()


def test_cookie_flags_with_secure_off(env):
    response = env.browser().get("/login")
    [header] = set_cookie_headers(response, "wsgate_session")
    value, attributes = cookie_attributes(header)
    assert value
    assert "httponly" in attributes
    assert attributes.get("samesite") == "Lax"
    assert "secure" not in attributes
    assert attributes.get("path") == "/"


def test_cookie_is_secure_by_default():
    env = make_env(without=("SESSION_COOKIE_SECURE",))
    assert env.app.config["SESSION_COOKIE_SECURE"] is True
    response = env.browser().get("/login")
    [header] = set_cookie_headers(response, "wsgate_session")
    _, attributes = cookie_attributes(header)
    assert "secure" in attributes
    assert "httponly" in attributes
    assert attributes.get("samesite") == "Lax"


def test_cookie_name_is_configurable():
    env = make_env({"SESSION_COOKIE_NAME": "my_gateway_sid"})
    env.add_user("alice")
    browser = env.browser()
    response = browser.get("/login")
    assert set_cookie_headers(response, "my_gateway_sid")
    assert not set_cookie_headers(response, "wsgate_session")
    response = browser.login("alice")
    [header] = set_cookie_headers(response, "my_gateway_sid")
    _, attributes = cookie_attributes(header)
    assert "httponly" in attributes and attributes.get("samesite") == "Lax"
    assert browser.logged_in()
    # extendsession finds the cookie by its configured name too.
    session_name = browser.extended_session()
    assert family_of(session_name) == browser.family_id


def test_redis_holds_no_usable_web_session_id(env, alice):
    """architecture.md: store only a hash of each secret, so a copy of Redis yields no login."""
    browser = env.browser()
    browser.login("alice")
    cookie = browser.cookie
    assert cookie.encode() not in env.all_bytes()


# --- Pages -------------------------------------------------------------------------------------


def test_home_shows_the_user(env, alice):
    browser = env.browser()
    browser.login("alice")
    response = browser.get("/")
    page = response.get_data(as_text=True)
    assert '<span id="username">alice</span>' in page
    assert f'<code id="user-id">19x{alice.id}</code>' in page
    assert f"19x{alice.id}" == alice.webservice_id


def test_sessions_page_lists_web_and_api_sessions(env, alice, bob):
    browser = env.browser(user_agent=BROWSER_AGENT, address="198.51.100.7")
    browser.login("alice")
    extended = browser.extended_session()
    standalone = env.api_login(alice, env.api(user_agent=API_AGENT, address="203.0.113.9"))
    other_browser = env.browser(user_agent="OtherBrowser/9", address="192.0.2.44")
    other_browser.login("alice")
    bobs = env.api_login(bob)

    page = browser.get("/sessions").get_data(as_text=True)
    items = {item["handle"]: item for item in session_items(page)}
    mine = browser.family_id
    assert len(items) == 4, items  # bob's is not there
    assert not any(h.startswith(family_of(bobs)) for h in items)

    web = items[f"{mine}:{browser.member[:8]}"]
    assert "mine" in web["class"].split()
    assert web["what"].startswith("Web") and "this browser" in web["what"]
    assert "198.51.100.7" in web["who"] and BROWSER_AGENT in web["html"]
    assert re.fullmatch(
        rf"created {STAMP} · last used {STAMP}",
        web["when"],
    ), web["when"]

    api_linked = next(
        item for h, item in items.items() if h.startswith(mine) and h != web["handle"]
    )
    assert api_linked["handle"] == f"{mine}:{member_of(extended)[:8]}"
    assert api_linked["what"].startswith("API") and "linked to this browser" in api_linked["what"]
    assert "mine" in api_linked["class"].split()

    alone = items[next(h for h in items if h.startswith(family_of(standalone)))]
    assert alone["what"].startswith("API") and "this browser" not in alone["what"]
    assert "linked" not in alone["what"].replace(alone["handle"], "")
    assert "mine" not in alone["class"].split()
    assert "203.0.113.9" in alone["who"] and API_AGENT in alone["html"]

    other = items[f"{other_browser.family_id}:{other_browser.member[:8]}"]
    assert other["what"].startswith("Web") and "this browser" not in other["what"]
    assert "192.0.2.44" in other["who"] and "OtherBrowser/9" in other["html"]
    assert "mine" not in other["class"].split()

    # Each item has its own "end this one" form, carrying its handle.
    for handle in items:
        assert f'<input type="hidden" name="handle" value="{handle}">' in page
    # No secret on the page: neither this browser's cookie nor any API session id.
    for secret in (browser.cookie, other_browser.cookie, extended, standalone):
        assert secret not in page
        assert secret.split(".")[-1] not in page


def test_end_this_one_for_another_family_ends_only_that_family(env, alice):
    browser = env.browser()
    browser.login("alice")
    mine_api = browser.extended_session()
    other_browser = env.browser()
    other_browser.login("alice")
    other_api = other_browser.extended_session()
    standalone = env.api_login(alice)

    handle = f"{other_browser.family_id}:{other_browser.member[:8]}"
    response = browser.post("/sessions/end", handle=handle)
    assert response.status_code == 302 and response.location == "/sessions"
    assert not other_browser.logged_in()
    assert not env.alive(other_api)
    assert browser.logged_in()
    assert env.alive(mine_api) and env.alive(standalone)


def test_end_this_one_on_a_linked_api_session_ends_its_web_login(env, alice):
    browser = env.browser()
    browser.login("alice")
    other_browser = env.browser()
    other_browser.login("alice")
    other_api = other_browser.extended_session()
    page = browser.get("/sessions").get_data(as_text=True)
    handle = f"{family_of(other_api)}:{member_of(other_api)[:8]}"
    assert handle in page
    browser.post("/sessions/end", handle=handle)
    assert not other_browser.logged_in()
    assert not env.alive(other_api)
    assert browser.logged_in()


def test_end_this_one_on_own_family_logs_out(env, alice):
    browser = env.browser()
    browser.login("alice")
    mine_api = browser.extended_session()
    standalone = env.api_login(alice)
    handle = f"{browser.family_id}:{browser.member[:8]}"
    response = browser.post("/sessions/end", handle=handle)
    assert response.status_code == 302 and response.location == "/login"
    assert not browser.logged_in()
    assert not env.alive(mine_api)
    assert env.alive(standalone)


def test_end_this_one_refuses_other_users_and_garbage_handles(env, alice, bob):
    browser = env.browser()
    browser.login("alice")
    bobs = env.api_login(bob)
    alices = env.api_login(alice)
    bob_handle = f"{family_of(bobs)}:{member_of(bobs)[:8]}"
    own_family_wrong_member = f"{family_of(alices)}:AAAAAAAA"
    for handle in [bob_handle, own_family_wrong_member, "garbage", "a:b", ":", "x" * 300]:
        before = env.snapshot(ignore_last_use=True)
        response = browser.post("/sessions/end", handle=handle)
        assert response.status_code == 302 and response.location == "/sessions", handle
        assert "That session had already ended." in browser.get("/sessions").get_data(as_text=True)
        assert env.snapshot(ignore_last_use=True) == before, handle
    assert env.alive(bobs) and env.alive(alices) and browser.logged_in()


def test_end_all_others_keeps_this_browser(env, alice, bob):
    browser = env.browser()
    browser.login("alice")
    mine_api = browser.extended_session()
    other_browser = env.browser()
    other_browser.login("alice")
    other_api = other_browser.extended_session()
    standalone = env.api_login(alice)
    bobs = env.api_login(bob)
    response = browser.post("/sessions/end-others")
    assert response.status_code == 302 and response.location == "/sessions"
    assert "Ended 2 other login(s)" in browser.get("/sessions").get_data(as_text=True)
    assert browser.logged_in() and env.alive(mine_api)
    assert not other_browser.logged_in()
    assert not env.alive(other_api) and not env.alive(standalone)
    assert env.alive(bobs)
    page = browser.get("/sessions").get_data(as_text=True)
    handles = [item["handle"] for item in session_items(page)]
    assert len(handles) == 2 and all(h.startswith(browser.family_id) for h in handles)


def test_end_all_logs_out(env, alice, bob):
    browser = env.browser()
    browser.login("alice")
    mine_api = browser.extended_session()
    other_browser = env.browser()
    other_browser.login("alice")
    standalone = env.api_login(alice)
    bobs = env.api_login(bob)
    response = browser.post("/sessions/end-all")
    assert response.status_code == 302 and response.location == "/login"
    assert not browser.logged_in() and not other_browser.logged_in()
    assert not env.alive(mine_api) and not env.alive(standalone)
    assert env.alive(bobs)
    assert env.families() == {family_of(bobs)}


# --- Logging out -------------------------------------------------------------------------------


def test_logout_ends_the_login(env, alice):
    browser = env.browser()
    browser.login("alice")
    family = browser.family_id
    response = browser.post("/logout")
    assert response.status_code == 302 and response.location == "/login"
    assert not browser.logged_in()
    assert not env.redis.exists(env.family_key(family))
    assert str(family) not in env.redis.zrange(env.gateway.keys.user_families(alice.id), 0, -1)
    page = browser.get("/login").get_data(as_text=True)
    assert "You are logged out" in page


@pytest.mark.parametrize("how", ["logout", "end this one", "end all"])
def test_logging_out_clears_the_cookie(env, alice, how):
    """The logged-in session id is dropped: the browser does not keep using it after a logout."""
    browser = env.browser()
    browser.login("alice")
    sid = browser.cookie
    if how == "logout":
        response = browser.post("/logout")
    elif how == "end this one":
        response = browser.post("/sessions/end", handle=f"{browser.family_id}:{browser.member[:8]}")
    else:
        response = browser.post("/sessions/end-all")
    assert response.status_code == 302 and response.location == "/login"
    assert browser.cookie != sid, "the logout answer set the logged-in session id again"
    assert not env.raw.exists(web_key(env, sid))


def test_logout_when_not_logged_in_is_harmless(env, alice):
    browser = env.browser()
    response = browser.post("/logout")
    assert response.status_code == 302 and response.location == "/login"
    assert not browser.logged_in()


# --- Stale and tampered cookies ------------------------------------------------------------------


def test_a_random_cookie_is_logged_out(env, alice):
    browser = env.browser()
    browser.login("alice")
    stranger = env.browser()
    stranger.set_cookie(secrets.token_urlsafe(32))
    assert not stranger.logged_in()
    stranger.set_cookie("../../etc/passwd")
    assert not stranger.logged_in()
    assert browser.logged_in()


def test_a_cookie_whose_web_session_is_gone_is_logged_out(env, alice):
    browser = env.browser()
    browser.login("alice")
    env.raw.delete(web_key(env, browser.cookie))
    assert not browser.logged_in()
    assert browser.get("/sessions").location == "/login"


def test_web_session_data_alone_does_not_log_in(env, alice):
    """A copy of a logged-in blob under another id names the family but is not its member."""
    browser = env.browser()
    browser.login("alice")
    forged_sid = secrets.token_urlsafe(32)
    env.raw.set(web_key(env, forged_sid), env.raw.get(web_key(env, browser.cookie)))
    forger = env.browser()
    forger.set_cookie(forged_sid)
    assert not forger.logged_in()
    assert browser.logged_in()


def test_a_cookie_of_an_ended_family_is_dropped(env, alice):
    browser = env.browser()
    browser.login("alice")
    sid = browser.cookie
    env.redis.delete(env.family_key(browser.family_id))
    response = browser.get("/")
    assert response.status_code == 302 and response.location == "/login"
    [header] = set_cookie_headers(response, "wsgate_session")
    value, attributes = cookie_attributes(header)
    assert value == "" and "expires" in attributes
    assert not env.raw.exists(web_key(env, sid))


def test_a_web_login_is_no_api_session(env, alice):
    """The web login's id, as its session data holds it or bound to the cookie, is refused as a
    sessionName: a web login's secret authenticates web requests only."""
    browser = env.browser()
    browser.login("alice")
    blob = env.raw.get(web_key(env, browser.cookie))
    stored = msgspec.msgpack.decode(blob)[WEB_LOGIN_KEY]["id"]
    bound = browser.web_login
    for name in (stored, str(bound), f"{bound.family_id}.{browser.cookie}"):
        answer = envelope(browser.client.post(ENDPOINT, data={"operation": "listtypes", "sessionName": name}))
        assert answer["error"]["code"] == "AUTHENTICATION_REQUIRED", name
    assert browser.logged_in()

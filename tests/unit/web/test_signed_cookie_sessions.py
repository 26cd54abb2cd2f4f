"""The standalone server's signed-cookie sessions (``WEB_SESSIONS="cookie"``): one signing
serializer per key, remade when the key changes."""

from __future__ import annotations

import time

from tests.unit.web.support import make_env
from webservice.standalone.web_session import SignedCookieSessions


def test_the_signing_serializer_is_made_once_per_key():
    env = make_env({"WEB_SESSIONS": "cookie"})
    app = env.app
    interface = app.session_interface
    assert isinstance(interface, SignedCookieSessions)
    first = interface.get_signing_serializer(app)
    assert first is not None and interface.get_signing_serializer(app) is first
    app.secret_key = "another key, long enough to be a real one"
    assert interface.get_signing_serializer(app) is not first


def test_a_cookie_signed_with_a_replaced_key_is_refused_unless_it_is_a_fallback():
    env = make_env({"WEB_SESSIONS": "cookie"})
    env.add_user("alice")
    browser = env.browser()
    browser.login("alice")
    assert browser.logged_in()
    old_key = env.app.secret_key

    cookie = browser.cookie
    assert cookie

    def logged_in_with_that_cookie() -> bool:
        other = env.browser()
        other.set_cookie(cookie)
        return other.logged_in()

    env.app.secret_key = "a new key that has replaced the old one entirely"
    assert not logged_in_with_that_cookie()

    env.app.config["SECRET_KEY_FALLBACKS"] = [old_key]
    assert logged_in_with_that_cookie()


# --- cookies remembered once verified ------------------------------------------------------------


def _cookie_app():
    env = make_env({"WEB_SESSIONS": "cookie"})
    app = env.app
    return app, app.session_interface


def _open(app, interface, cookie: str):
    name = interface.get_cookie_name(app)
    with app.test_request_context(headers={"Cookie": f"{name}={cookie}"}) as context:
        return interface.open_session(app, context.request)


def _counting_loads(interface, app, monkeypatch) -> list[str]:
    serializer = interface.get_signing_serializer(app)
    calls: list[str] = []
    original = serializer.loads
    monkeypatch.setattr(
        serializer, "loads", lambda value, **options: calls.append(value) or original(value, **options)
    )
    return calls


def test_a_cookie_is_verified_once_and_every_request_gets_its_own_copy(monkeypatch):
    app, interface = _cookie_app()
    cookie = interface.get_signing_serializer(app).dumps({"link": {"id": "x"}, "seen": [1]})
    loads = _counting_loads(interface, app, monkeypatch)
    first = _open(app, interface, cookie)
    first["link"]["id"] = "changed by a request"
    first["seen"].append(2)
    second = _open(app, interface, cookie)
    assert dict(second) == {"link": {"id": "x"}, "seen": [1]}
    assert loads == [cookie]


def test_a_remembered_cookie_past_the_session_lifetime_is_refused(monkeypatch):
    from webservice.standalone import web_session

    app, interface = _cookie_app()
    cookie = interface.get_signing_serializer(app).dumps({"link": {"id": "x"}})
    assert dict(_open(app, interface, cookie)) == {"link": {"id": "x"}}
    lifetime = int(app.permanent_session_lifetime.total_seconds())
    now = time.time()
    monkeypatch.setattr(web_session.time, "time", lambda: now + lifetime + 2)
    assert dict(_open(app, interface, cookie)) == {}
    # Signed in the future (a clock set back): refused too, as the serializer refuses it.
    monkeypatch.setattr(web_session.time, "time", lambda: now - 60)
    assert dict(_open(app, interface, cookie)) == {}


def test_a_remembered_cookie_altered_by_one_character_is_refused():
    app, interface = _cookie_app()
    cookie = interface.get_signing_serializer(app).dumps({"link": {"id": "x"}})
    assert dict(_open(app, interface, cookie))
    # Not the last character: of the signature's last base64 character, only some bits count.
    for position in (1, len(cookie) // 2, len(cookie) - 2):
        altered = cookie[:position] + ("A" if cookie[position] != "A" else "B") + cookie[position + 1:]
        assert dict(_open(app, interface, altered)) == {}, position


def test_a_remembered_cookie_is_refused_once_the_key_is_replaced():
    app, interface = _cookie_app()
    cookie = interface.get_signing_serializer(app).dumps({"link": {"id": "x"}})
    assert dict(_open(app, interface, cookie))
    app.secret_key = "a new key that has replaced the old one entirely"
    assert dict(_open(app, interface, cookie)) == {}


def test_the_remembered_cookies_are_bounded():
    from webservice.standalone.web_session import VERIFIED_COOKIES

    app, interface = _cookie_app()
    serializer = interface.get_signing_serializer(app)
    for n in range(VERIFIED_COOKIES + 20):
        assert dict(_open(app, interface, serializer.dumps({"n": n}))) == {"n": n}
        assert 1 <= len(interface._made[2]) <= VERIFIED_COOKIES

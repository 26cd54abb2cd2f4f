"""The standalone server's signed-cookie sessions (``WEB_SESSIONS="cookie"``): one signing
serializer per key, remade when the key changes."""

from __future__ import annotations

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

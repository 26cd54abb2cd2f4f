"""The standalone server's web sessions: Flask's signed cookie (the default), or Flask-Session in
the gateway's Redis.

Redis: only a hash of the cookie's session id is used as the Redis key, and the id is regenerated
at every login. Either way, whether a browser is logged in is decided by its session family
(auth/web_login.py), not by this data.
"""

from __future__ import annotations

import re
import time
from typing import Any

from flask import Flask, Request, Response, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_session.base import ServerSideSession, ServerSideSessionInterface
from flask_session.redis import RedisSessionInterface
from itsdangerous import BadSignature, URLSafeTimedSerializer
from redis.exceptions import RedisError

from webservice.services import Services
from webservice.store.client import RedisClient, connect
from webservice.store.tokens import hash_secret

#: Set in the WSGI environ to the RedisError met while opening the session.
UNAVAILABLE = "wsgate.web_session_unavailable"
#: The characters of a web session id (URL-safe base64 without padding).
_SID_CHARS = re.compile(r"[A-Za-z0-9_-]+")


#: How many verified cookies a SignedCookieSessions remembers (per process; then it starts over).
VERIFIED_COOKIES = 1024


class SignedCookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, with the signing serializer made once per key, and the
    cookies it verified lately remembered.

    Flask builds a new serializer (and its signer) for every request that opens or saves a
    session: about 15 µs of CPU of each page view and browser ``extendsession``. The one kept
    here is remade whenever the app's ``SECRET_KEY`` or ``SECRET_KEY_FALLBACKS`` change (the
    standalone server may load a shared key after it starts).

    Opening a cookie (its HMAC, base64, zlib and tagged JSON: about 25 µs) is done once per
    cookie: a browser's page script sends the same cookie with every ``extendsession``. The exact
    cookie text maps to the data it held and when it was signed, so a cookie is accepted from
    memory only if it is byte for byte one that verified under the current keys (the memory
    goes with the serializer when they change), and only while its age is within the session
    lifetime, checked as the serializer checks it. Each request gets its own copy of the data.
    At most VERIFIED_COOKIES are kept (then the memory starts over).
    """

    #: Its methods read only the app and the request they are given, never Flask's request
    #: context: the lean path (api/lean_path.py) may open and save its data.
    opens_outside_flask = True
    #: The keys, the serializer made for them, and the cookies it verified: one tuple, read
    #: once per request, so a cookie verified under other keys is never remembered under these.
    _made: tuple[tuple[object, ...], URLSafeTimedSerializer | None, dict[str, Any]] | None = None

    def _for_current_keys(self, app: Flask) -> tuple[URLSafeTimedSerializer | None, dict[str, Any]]:
        keys = (app.secret_key, *(app.config["SECRET_KEY_FALLBACKS"] or ()))
        made = self._made
        if made is None or made[0] != keys:
            made = self._made = (keys, super().get_signing_serializer(app), {})
        return made[1], made[2]

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        return self._for_current_keys(app)[0]

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        serializer, remembered = self._for_current_keys(app)
        if serializer is None:
            return None
        cookie = request.cookies.get(self.get_cookie_name(app))
        if not cookie:
            return self.session_class()
        max_age = int(app.permanent_session_lifetime.total_seconds())
        verified = remembered.get(cookie)
        if verified is not None:
            data, signed_at = verified
            if 0 <= int(time.time()) - signed_at <= max_age:
                return self.session_class(_fresh(data))
        try:
            data, signed = serializer.loads(cookie, max_age=max_age, return_timestamp=True)
        except BadSignature:
            return self.session_class()
        if len(remembered) >= VERIFIED_COOKIES:
            # Start over rather than drop one: clear() is one step under threads, a del of the
            # first key is not (two threads may pick the same one).
            remembered.clear()
        remembered[cookie] = (_fresh(data), int(signed.timestamp()))
        return self.session_class(data)


def _fresh(value: Any) -> Any:
    """A copy of session data that shares nothing a request could change (its dicts and lists,
    also inside tuples; the rest of what Flask's tagged JSON makes is immutable)."""
    if isinstance(value, dict):
        return {key: _fresh(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_fresh(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_fresh(item) for item in value)
    return value


class WebSessionInterface(RedisSessionInterface):
    """Flask-Session's Redis interface over the client it is given, single Redis or cluster.

    Flask-Session 0.8 accepts only a ``redis.Redis`` and otherwise silently falls back to a
    ``Redis()`` on localhost, which would put web sessions in the wrong place on a Redis Cluster.
    """

    def __init__(self, app: Flask, client: RedisClient, key_prefix: str) -> None:
        ServerSideSessionInterface.__init__(self, app, key_prefix=key_prefix, permanent=False)
        self.client = client

    def _get_store_id(self, sid: str) -> str:
        """The Redis key holds a hash of the cookie's session id, never the id itself."""
        return self.key_prefix + hash_secret(sid)

    def open_session(self, app: Flask, request: Request) -> ServerSideSession:
        """Without a cookie there is nothing to load: the new session gets its id only if it is
        ever saved (most requests, the API's, never are). A cookie that has not the exact shape
        of the ids this interface makes is treated as none, without asking Redis."""
        if "HTTP_COOKIE" not in request.environ:
            return self.session_class(sid="", permanent=self.permanent)
        cookie = request.cookies.get(self.get_cookie_name(app))
        if not cookie or not self._is_sid(cookie):
            return self.session_class(sid="", permanent=self.permanent)
        try:
            return super().open_session(app, request)
        except RedisError as error:
            # Raised here, Flask would answer it before any handler of ours could: it is raised
            # again at the start of the request instead (app.py), answered like any Redis outage.
            request.environ[UNAVAILABLE] = error
            return self.session_class(sid="", permanent=self.permanent)

    def _is_sid(self, value: str) -> bool:
        """Whether ``value`` looks like ``secrets.token_urlsafe(sid_length)`` (_generate_sid)."""
        return len(value) == -(-self.sid_length * 4 // 3) and _SID_CHARS.fullmatch(value) is not None

    def save_session(self, app: Flask, session: ServerSideSession, response: Response) -> None:
        if UNAVAILABLE in request.environ:
            return
        if session and not session.sid:
            session.sid = self._generate_sid(self.sid_length)
        super().save_session(app, session, response)

    def regenerate(self, web_session: ServerSideSession) -> None:  # type: ignore[override]
        """Gives the session a new id and drops the old one's data, even when it is empty.

        (Flask-Session's own ``regenerate`` skips empty sessions, and a session that just found
        its login ended is empty.) The web login calls it at every login (no fixation).
        """
        if web_session.sid:
            self._delete_session(self._get_store_id(web_session.sid))
        web_session.sid = self._generate_sid(self.sid_length)
        web_session.modified = True


def init_web_sessions(app: Flask, gateway: Services, client: RedisClient | None) -> None:
    """Keeps web sessions in the gateway's Redis (Flask-Session needs a client that answers bytes)."""
    if client is None:
        client = connect(gateway.settings, decode_responses=False)
    app.permanent_session_lifetime = int(gateway.settings["SESSION_ABSOLUTE_TIMEOUT"])
    app.session_interface = WebSessionInterface(app, client, gateway.keys.web_session_prefix())

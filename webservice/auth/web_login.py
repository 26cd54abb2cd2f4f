"""The web-UI login: a Flask-Session session in Redis whose data names its session family.

The cookie's session id is the secret of the family's root member, so whether a browser is logged
in is decided by the family record, read on every request (one round trip), never by the session
data alone. A request that was in flight during a logout and saves its session data afterwards
therefore cannot bring the login back: the family it names is gone.
"""

from __future__ import annotations

import re

from flask import Flask, Request, Response, current_app, flash, g, request, session
from flask_session.base import ServerSideSession, ServerSideSessionInterface
from flask_session.redis import RedisSessionInterface

from webservice.gateway import Gateway, current_gateway
from webservice.store.client import RedisClient, connect
from webservice.api.request_parsing import client_info
from webservice.store.sessions import PipelineExtra, Session
from webservice.store.tokens import SessionId, hash_secret

#: The characters of a web session id (URL-safe base64 without padding).
_SID_CHARS = re.compile(r"[A-Za-z0-9_-]+")
FAMILY = "family"
#: The username of the login, kept for the audit trail only (the family decides who is logged in).
USERNAME = "username"
_CURRENT = "_wsgate_web_login"


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
        return super().open_session(app, request)

    def _is_sid(self, value: str) -> bool:
        """Whether ``value`` looks like ``secrets.token_urlsafe(sid_length)`` (_generate_sid)."""
        return len(value) == -(-self.sid_length * 4 // 3) and _SID_CHARS.fullmatch(value) is not None

    def save_session(self, app: Flask, session: ServerSideSession, response: Response) -> None:
        if session and not session.sid:
            session.sid = self._generate_sid(self.sid_length)
        super().save_session(app, session, response)

    def rotate(self, web_session: ServerSideSession) -> None:
        """Gives the session a new id and drops the old one's data, even when it is empty.

        (Flask-Session's own ``regenerate`` skips empty sessions, and a session that just found
        its login ended is empty.)
        """
        if web_session.sid:
            self._delete_session(self._get_store_id(web_session.sid))
        web_session.sid = self._generate_sid(self.sid_length)
        web_session.modified = True


def init_web_sessions(app: Flask, gateway: Gateway, client: RedisClient | None) -> None:
    """Keeps web sessions in the gateway's Redis (Flask-Session needs a client that answers bytes)."""
    if client is None:
        client = connect(app.config, decode_responses=False)
    app.permanent_session_lifetime = int(app.config["SESSION_ABSOLUTE_TIMEOUT"])
    app.session_interface = WebSessionInterface(app, client, gateway.keys.web_session_prefix())


def current_login() -> Session | None:
    """The live web login of this request's browser, checked once per request; else ``None``.

    A session whose family has ended is emptied, so the browser's cookie is dropped.
    """
    if _CURRENT not in g:
        setattr(g, _CURRENT, _check_login())
    return getattr(g, _CURRENT)


def _check_login() -> Session | None:
    family = session.get(FAMILY)
    if not family:
        return None
    login = current_gateway().sessions.check(SessionId(family, session.sid))
    if login is None:
        session.clear()
    return login


def claims_login() -> bool:
    """Whether this browser's session data names a login (live or not: see current_login)."""
    return bool(session.get(FAMILY))


def has_web_cookie() -> bool:
    return bool(request.cookies.get(current_gateway().settings["SESSION_COOKIE_NAME"]))


def claimed_username() -> str:
    """The username this browser's session data names (for the audit trail; may be stale)."""
    return str(session.get(USERNAME, ""))


def start_login(
    user_id: int,
    username: str,
    also: PipelineExtra | None = None,
    replaced: PipelineExtra | None = None,
) -> Session:
    """Logs this browser in: a new session id (no fixation) that roots a new family.

    A login this browser already had ends first, with its API sessions: nobody could reach its
    root any more once the session id changes. ``also`` rides with the new family's creation,
    ``replaced`` with the end of the previous one (audit entries).
    """
    previous = current_login()
    if previous is not None:
        current_gateway().sessions.end_family(previous, also=replaced)
    _interface().rotate(session)
    login = current_gateway().sessions.open_web(
        session.sid, user_id, username, client_info(request), also=also
    )
    session[FAMILY] = login.family_id
    session[USERNAME] = username
    setattr(g, _CURRENT, login)
    return login


def end_login(farewell: str | None = None, also: PipelineExtra | None = None) -> None:
    """Logs this browser out, and with it every API session linked to its login.

    The browser keeps no trace of the login: its session id is dropped, and when there is a
    ``farewell`` to flash, it is carried by a fresh session id. ``also`` rides with the end of
    the family (sent only when there was a live login to end).
    """
    login = current_login()
    if login is not None:
        current_gateway().sessions.end_family(login, also=also)
    session.clear()
    if farewell:
        flash(farewell)
        _interface().rotate(session)
    setattr(g, _CURRENT, None)


def extend_login(also: PipelineExtra | None = None) -> tuple[SessionId, Session] | None:
    """A new API session linked to this browser's live login; ``None`` if it is not logged in.

    ``also`` rides with the extension (see SessionStore.extend).
    """
    family = session.get(FAMILY)
    if not family:
        return None
    extended = current_gateway().sessions.extend(
        SessionId(family, session.sid), client_info(request), also=also
    )
    if extended is None:
        session.clear()
    return extended


def _interface() -> WebSessionInterface:
    interface = current_app.session_interface
    if not isinstance(interface, WebSessionInterface):
        raise RuntimeError("init_web_sessions() was not called for this app")
    return interface

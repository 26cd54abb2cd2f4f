"""The web login of a browser, linked to a session family: whatever session interface the host
uses (Flask's signed cookie, Flask-Session, ...).

The browser's session data holds the web login's id ``<family>.<secret>`` under one key. The
family record decides whether that login is live, checked once per request in one round trip
(:meth:`WebLink.current`), never the session data alone: a request that was in flight during a
logout and saves its session data afterwards cannot bring the login back, because the family it
names is gone. A web login's secret authenticates web requests only (the family marks its root as
a web login), and ``extendsession`` gives scripts API sessions of their own, never that secret.

Where the session data is kept server-side (Flask-Session), the session id is regenerated at
every login (``regenerate``, when the interface has one), so a session id planted in a browser
before the login is worth nothing after it.
"""

from __future__ import annotations

from collections.abc import Sequence

from flask import Request, current_app, g, request, session

from webservice import events
from webservice.auth.browser import Browser
from webservice.auth.endings import Endings
from webservice.auth.login import LoginFlow
from webservice.events import SessionEvent
from webservice.store.round_trip import Participant
from webservice.store.session_values import ClientInfo, Session
from webservice.store.sessions import SessionStore
from webservice.store.tokens import SessionId

#: The key of the host's session data that holds the web login: ``{"id": "<family>.<secret>",
#: "user": <username>}`` (the username for the audit trail only: the family decides who it is).
SESSION_KEY = "_wsgate_login"
_CHECKED = "_wsgate_web_login"


def client_info(of: Request | None = None) -> ClientInfo:
    """The client of request ``of`` (default: this request), as session listings and the audit
    trail show it."""
    environ = (of if of is not None else request).environ
    return ClientInfo(
        address=environ.get("REMOTE_ADDR") or "", user_agent=environ.get("HTTP_USER_AGENT", "")
    )


class WebLink:
    """Links the browser's web login to a session family (per app; used within a request)."""

    def __init__(self, sessions: SessionStore, flow: LoginFlow, endings: Endings) -> None:
        self.sessions = sessions
        self.flow = flow
        self.endings = endings

    # --- reading ----------------------------------------------------------------------------

    def has_cookie(self, browser: Browser | None = None) -> bool:
        """Whether the request (``browser``'s, default this request context's) carries the app's
        session cookie at all."""
        req = browser.request if browser is not None else request
        interface = current_app.session_interface
        return bool(req.cookies.get(interface.get_cookie_name(current_app)))

    def claimed_id(self, browser: Browser | None = None) -> SessionId | None:
        """The web login this browser's session data names (live or not: see :meth:`current`),
        bound to the session id where the interface has one: the family's root member is the
        hash of the login's secret and that id, so the session data copied under another id
        (server-side sessions) is no login. ``browser``: default this request context's."""
        data = browser.session if browser is not None else session
        link = data.get(SESSION_KEY)
        parsed = SessionId.parse(link.get("id")) if isinstance(link, dict) else None
        if parsed is None:
            return None
        return SessionId(parsed.family_id, parsed.secret + str(getattr(data, "sid", "") or ""))

    def claimed_username(self, browser: Browser | None = None) -> str:
        data = browser.session if browser is not None else session
        link = data.get(SESSION_KEY)
        return str(link.get("user", "")) if isinstance(link, dict) else ""

    def current(self) -> Session | None:
        """The live web login of this request's browser, checked once per request; else ``None``.

        A login whose family has ended is dropped from the session data.
        """
        if _CHECKED not in g:
            setattr(g, _CHECKED, self._check())
        return getattr(g, _CHECKED)

    def _check(self) -> Session | None:
        claimed = self.claimed_id()
        if claimed is None:
            return None
        login = self.sessions.check(claimed, "web")
        if login is None:
            # A login that a revocation ended moments ago is forgotten only once the replicas
            # confirm its end (REDIS_WAIT_REPLICAS; else NotConfirmed, and the browser keeps it,
            # so that its next request, a retried logout, asks again).
            self.sessions.recently_ended(claimed, "web")
            session.pop(SESSION_KEY, None)
        return login

    # --- changing ---------------------------------------------------------------------------

    def login(
        self, user_id: int, username: str, also: Sequence[Participant] = ()
    ) -> Session:
        """Logs this browser in: a new family rooted in a new web login (and a new session id
        where the interface can regenerate one). A login this browser already had ends first,
        with its API sessions (``web_relogin``). ``also`` rides with the new family."""
        previous = self.current()
        client = client_info()
        if previous is not None:
            self.end(previous, "web_relogin", SessionEvent.of_client("web", client))
        regenerate = getattr(current_app.session_interface, "regenerate", None)
        if regenerate is not None and getattr(session, "sid", None) is not None:
            regenerate(session)
        web_id = SessionId.new()
        session[SESSION_KEY] = {"id": str(web_id), "user": username}
        root = self.claimed_id()
        assert root is not None
        login = self.flow.succeed(
            user_id,
            username,
            client,
            "web",
            root.handle,
            lambda riders, ended, cap: self.sessions.open_web(
                root, user_id, username, client, riders, ended, cap
            ),
            also,
        )
        assert login is not None  # open_web never declines
        setattr(g, _CHECKED, login)
        return login

    def forget(self) -> None:
        """Drops this browser's web login from its session data without ending anything (its
        family has ended already)."""
        session.pop(SESSION_KEY, None)
        setattr(g, _CHECKED, None)

    def logout(self) -> bool:
        """Logs this browser out, and with it every API session linked to its login; says
        whether there was a live login to end. When the replicas do not confirm it
        (REDIS_WAIT_REPLICAS), raises NotConfirmed with the login still named by the session
        data: logging out again confirms it."""
        login = self.current()
        if login is not None:
            self.end(login, "web_logout", SessionEvent.of_client("web", client_info()))
        session.pop(SESSION_KEY, None)
        setattr(g, _CHECKED, None)
        return login is not None

    def end(self, login: Session, reason: str, event: SessionEvent) -> None:
        """Ends the family of ``login``, announcing it (``family_ended``, ``reason``)."""
        self.endings.family(login, event.but(reason=reason))

    def extend(self, browser: Browser | None = None) -> tuple[SessionId, Session] | None:
        """A new API session linked to the live web login of ``browser`` (default: this request
        context's); ``None`` if it is not logged in (its session data then forgets the login)."""
        browser = browser if browser is not None else Browser.of_flask()
        root = self.claimed_id(browser)
        if root is None:
            return None
        added = SessionId.new(root.family_id)
        client = client_info(browser.request)
        event = SessionEvent.of_client(
            "api", client, user=self.claimed_username(browser), handle=added.handle
        )
        round_trip = events.announce(events.session_extended, event)
        capped_entry = self.endings.capped_entry(event)
        extended = self.sessions.extend(
            root, added, client, round_trip.riders, capped_entry=capped_entry
        )
        if extended is None:
            round_trip.cancel()
            browser.session.pop(SESSION_KEY, None)
            return None
        round_trip.done()
        if extended.ended is not None:
            self.endings.capped_member(extended.ended, event, audited=capped_entry is not None)
        return added, extended.session

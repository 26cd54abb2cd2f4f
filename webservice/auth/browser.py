"""The browser behind a webservice.php request: its request and its session data, with or without
Flask's request context.

Why it exists. ``extendsession`` is the one operation that a browser's cookie authenticates; it
reads the host's session data to find the web login. On Flask's path that is Flask's ``request``
and ``session``. The lean path (api/lean_path.py) answers such a request without Flask's request
context, which costs about half of the request's CPU: it hands the operation a :class:`Browser`
whose session data it opens itself, through the app's session interface, only when something
reads it, and saves it afterwards as Flask would.

What needs Flask's request context itself (Flask-WTF's CSRF token check reads Flask's
``session`` and ``g``) raises :class:`NeedsRequestContext` outside it: the lean path then hands the
request to Flask. Raise it only before anything has changed.
"""

from __future__ import annotations

from flask import Flask, Request, request, session
from flask.sessions import SessionMixin


class NeedsRequestContext(Exception):
    """Something needs Flask's request context, and this request is served without one (the lean
    path hands it to Flask). Raised only before anything has changed."""


class Browser:
    """The request a browser sent, and its session data, opened on first use."""

    def __init__(self, request: Request, app: Flask | None = None) -> None:
        self.request = request
        #: The app whose session interface opens the session data; None on Flask's path (the
        #: request context has it open already).
        self._app = app
        self._session: SessionMixin | None = None

    @classmethod
    def of_flask(cls) -> Browser:
        """This request context's browser (Flask's request and session)."""
        return cls(request._get_current_object())  # type: ignore[attr-defined]

    @property
    def session(self) -> SessionMixin:
        """The session data: Flask's, or opened on first use through the app's session interface
        (a null session when it opens none, as Flask makes one). Marked accessed, as Flask's
        request context marks it whenever its ``session`` is used (its save then adds
        ``Vary: Cookie``)."""
        if self._app is None:
            return session._get_current_object()  # type: ignore[attr-defined,no-any-return]
        data = self.open()
        data.accessed = True
        return data

    def open(self) -> SessionMixin:
        """Outside Flask's request context: the session data, opened now if nothing has read it
        yet (not marked accessed), as the lean path saves it after the request."""
        app = self._app
        assert app is not None, "in Flask's request context, Flask opened the session data"
        if self._session is None:
            interface = app.session_interface
            opened = interface.open_session(app, self.request)
            self._session = opened if opened is not None else interface.make_null_session(app)
        return self._session

    @property
    def opened(self) -> SessionMixin | None:
        """The session data the lean path opened for this request, if anything read it."""
        return self._session

    def require_request_context(self) -> None:
        """Raises NeedsRequestContext outside Flask's request context."""
        if self._app is not None:
            raise NeedsRequestContext

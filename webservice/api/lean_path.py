"""The lean path: ``webservice.php`` requests answered without Flask's request context.

Why it exists. An API call is a short burst of Python around one Redis round trip, and most of
that burst was Flask and Werkzeug serving the request, not the gateway: routing, pushing the
request context, opening and saving the session, the before/after-request hooks, building the
``Response`` and its headers. Measured in-process (``scripts/bench``), a ``listtypes`` cost about
300 µs of CPU through Flask where a bare Flask view doing one Redis ``GET`` cost 130 µs. A
browser's ``extendsession`` (the one operation a cookie authenticates) cost about 550 µs through
Flask and 330 µs here. Nothing an API operation does needs what Flask adds for one (``g``, the
request proxy); the one thing ``extendsession`` needs, the browser's session data, this path
opens itself (auth/browser.py).

How it is shaped. A WSGI middleware around the app's own ``wsgi_app``, as Werkzeug's
``ProxyFix`` is: it takes a request when all of these hold, and passes anything else to Flask
unchanged:

- the path is ``/webservice.php`` or ``/webservice`` and the method one the endpoint's route
  takes (else Flask routes it: a 405, a redirect, another view);
- no multipart body (read as a stream; Flask reads it, see below);
- the app's hooks are all known to do nothing for such a request (:data:`HARMLESS_HOOKS`), no
  one listens to Flask's request signals, and neither routing nor the host's name depend on the
  configuration (``SERVER_NAME``, host matching, ``TRUSTED_HOSTS``): otherwise Flask's path would
  do something this one skips;
- with a ``Cookie`` header, moreover: the app's session interface opens and saves the session
  data from the request and the app alone (Flask's signed cookie: :func:`opens_outside_flask`;
  a server-side one may read Flask's context, and costs its own round trip anyway), the app has
  its signing key, and no hook reads the session (:data:`HARMLESS_WITH_A_COOKIE`);
- ``LEAN_PATH`` is on.

It then does what the endpoint's view does (endpoint.respond: parse, operation, session check,
handler, envelope, request log, metrics), inside an app context only (the session events are
sent with the app as sender), and answers with the same status, headers, in the same order, and
bytes as the view. When something read the browser's session data (or Flask would refresh a
permanent session's cookie), that data is saved as Flask saves it, on the view's own response.
An operation whose handler reads Flask's request context (``Operation.uses_flask_request``, true
unless a plugin says otherwise), or that meets something needing it (Flask-WTF's token check:
NeedsRequestContext), is handed to Flask before anything happened: the body read so far is put
back as ``wsgi.input``.

The middleware sits directly around Flask's own ``wsgi_app`` (init_app installs it only then), so
every other middleware, ``ProxyFix`` among them, runs before it: the client address it sees is
the one Flask would see. A host that wraps ``app.wsgi_app`` before ``WSGate.init_app`` keeps the
full path for everything.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, signals
from flask.sessions import SecureCookieSessionInterface, SessionInterface, SessionMixin

from webservice.api import endpoint
from webservice.api.envelope import MIMETYPE
from webservice.api.gateway import gateway_of
from webservice.auth.browser import Browser
from webservice.serving.request_log import REQUEST_ID_HEADER

_REMEMBER_COOKIE = "flask_login.login_manager.LoginManager._update_remember_cookie"
#: The app's hooks that do nothing for a webservice.php request without a cookie, by
#: ``module.qualname``. Any other hook keeps every request on Flask's path.
HARMLESS_HOOKS = frozenset(
    {
        # The endpoint's own headers: the lean path sends them itself.
        "webservice.api.endpoint.add_headers",
        # Logs answers the view did not give: the lean path gives them all.
        "webservice.serving.request_log.init_app.<locals>.log_unseen",
        # Exempt webservice.php from a host's CSRFProtect, which then skips it.
        "webservice.auth.csrf.init_app.<locals>.exempt_once",
        "flask_wtf.csrf.CSRFProtect.init_app.<locals>.csrf_protect",
        # Flask-Login's "remember me" refresh: acts only on a session that holds a login.
        _REMEMBER_COOKIE,
        # The standalone server: a web session's Redis error (no cookie, no web session), its
        # page headers (the endpoint's answers carry theirs), its signing key (nothing is signed).
        "webservice.standalone.app._session_store_error",
        "webservice.standalone.app._load_shared_secret_key",
        # Its web pages' malformed multipart forms (never webservice.php's).
        "webservice.standalone.app._refuse_nameless_form_parts",
        "webservice.standalone.security_headers.add_security_headers",
    }
)
#: Those that do nothing for one with a cookie too. Flask-Login's refresh reads the session (so
#: Flask's answer would say ``Vary: Cookie``): with it, requests with a cookie keep Flask's path.
HARMLESS_WITH_A_COOKIE = HARMLESS_HOOKS - {_REMEMBER_COOKIE}
_HOOK_TABLES = (
    "before_request_funcs",
    "after_request_funcs",
    "teardown_request_funcs",
    "url_value_preprocessors",
)
_REQUEST_SIGNALS = (
    signals.request_started,
    signals.request_finished,
    signals.got_request_exception,
    signals.request_tearing_down,
)
#: The methods the endpoint's route takes (HEAD with GET).
_METHODS = frozenset([*endpoint.METHODS, "HEAD"])
_STATUS = "200 OK"
_FIXED_HEADERS = list(endpoint.HEADERS)
#: What Flask's save adds to an answer whose session data was read.
_VARY_COOKIE = ("Vary", "Cookie")

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class LeanPath:
    """WSGI middleware: answers webservice.php requests itself, passes the rest on."""

    def __init__(self, app: Flask, wsgi_app: WSGIApp) -> None:
        self.app = app
        self.wsgi_app = wsgi_app
        #: Whether requests without a cookie, and with one, may take this path (apart from the
        #: request signals and the signing key, which can change): known at the first request.
        self._usable: tuple[bool, bool] | None = None

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        cookie = "HTTP_COOKIE" in environ
        if (
            environ.get("PATH_INFO") not in endpoint.PATHS
            or environ.get("REQUEST_METHOD") not in _METHODS
            or environ.get("CONTENT_TYPE", "").startswith("multipart/")
            or not self.usable(cookie)
        ):
            return self.wsgi_app(environ, start_response)
        app = self.app
        # As Flask does on its first request: from now on, adding a hook is an error (so the
        # hooks usable() read stay all there are).
        app._got_first_request = True
        request = app.request_class(environ)
        # Werkzeug keeps the request in its own environ: a reference cycle per request, left to
        # the cyclic garbage collector, whose full passes (tens of ms over the app's objects)
        # stalled a worker and all its requests. Nothing here reads it back.
        environ.pop("werkzeug.request", None)
        browser = Browser(request, app)
        with app.app_context():
            answer = endpoint.respond(gateway_of(app), request, browser)
            if answer is None:
                # An operation that reads Flask's request: Flask serves it, from the same bytes.
                environ["wsgi.input"] = io.BytesIO(request.get_data(cache=True))
                return self.wsgi_app(environ, start_response)
            data = self._session_to_save(browser, cookie)
            if data is not None and not _only_varies(app, app.session_interface, data):
                # Flask's own save, on the view's response with the endpoint's headers.
                response = endpoint.add_headers(endpoint.response_of(answer))
                app.session_interface.save_session(app, data, response)
                return response(environ, start_response)
        body = answer.body
        headers = [
            ("Content-Type", MIMETYPE),
            ("Content-Length", str(len(body))),
            (REQUEST_ID_HEADER, answer.request_id),
            *_FIXED_HEADERS,
        ]
        if data is not None and data.accessed:
            headers.append(_VARY_COOKIE)
        start_response(_STATUS, headers)
        return [] if request.method == "HEAD" else [body]

    def _session_to_save(self, browser: Browser, cookie: bool) -> SessionMixin | None:
        """The session data Flask would save after this request: what the operation read, or
        the cookie's when Flask refreshes a permanent session's cookie on every answer
        (SESSION_REFRESH_EACH_REQUEST); never a null session (Flask saves none)."""
        data = browser.opened
        if data is None and cookie and self.app.config["SESSION_REFRESH_EACH_REQUEST"]:
            data = browser.open()
        if data is not None and self.app.session_interface.is_null_session(data):
            return None
        return data

    def usable(self, cookie: bool) -> bool:
        """Whether Flask's path would do nothing more for such a request than this one does."""
        if self._usable is None:
            self._usable = self._nothing_else_hooked()
        without, with_cookie = self._usable
        if cookie and not (with_cookie and self.app.secret_key):
            return False
        return without and not any(signal.receivers for signal in _REQUEST_SIGNALS)

    def _nothing_else_hooked(self) -> tuple[bool, bool]:
        """(for requests without a cookie, for requests with one)"""
        app = self.app
        config = app.config
        if not gateway_of(app).settings["LEAN_PATH"]:
            return False, False
        if config.get("SERVER_NAME") or config.get("TRUSTED_HOSTS") or app.url_map.host_matching:
            return False, False
        hooks = {
            _name(hook)
            for table in _HOOK_TABLES
            for scope, scoped in getattr(app, table).items()
            if scope in (None, endpoint.blueprint.name)
            for hook in scoped
        }
        without = hooks <= HARMLESS_HOOKS
        with_cookie = hooks <= HARMLESS_WITH_A_COOKIE and opens_outside_flask(app.session_interface)
        return without, with_cookie


def _only_varies(app: Flask, interface: SessionInterface, data: SessionMixin) -> bool:
    """Whether the signed cookie's save of ``data`` would at most add ``Vary: Cookie`` (for data
    that was read): the data is unchanged, and it is empty or its cookie is not due again
    (SecureCookieSessionInterface.save_session's rules)."""
    return not data.modified and (not data or not interface.should_set_cookie(app, data))


def opens_outside_flask(interface: SessionInterface) -> bool:
    """Whether ``interface`` opens and saves the session data from the request and the app
    alone, as Flask's signed cookie does (its signing serializer may be its own), or says that
    its own methods do: a class attribute ``opens_outside_flask = True``."""
    kind = type(interface)
    if getattr(kind, "opens_outside_flask", False) is True:
        return True
    return (
        kind.open_session is SecureCookieSessionInterface.open_session
        and kind.save_session is SecureCookieSessionInterface.save_session
    )


def _name(hook: Any) -> str:
    return f"{getattr(hook, '__module__', '')}.{getattr(hook, '__qualname__', '')}"


def init_app(app: Flask) -> None:
    """Puts the lean path around the app's own ``wsgi_app``, unless something wraps it already
    (then the client address that middleware sets would not be seen: see the module's notes)."""
    if "wsgi_app" not in vars(app):
        app.wsgi_app = LeanPath(app, app.wsgi_app)  # type: ignore[method-assign]

"""A small host app, as an adopter writes one: its own users and Flask-Login, plus ``WSGate``.

:func:`create_host_app` builds it (tests, and gunicorn through ``tests/host/wsgi_host.py``);
:func:`create_plain_host_app` is a host without Flask-Login that calls ``gate.login_web`` and
friends itself. Importing this module needs no environment variables and no Redis.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import redis
from flask import Flask, abort, redirect, render_template_string, request, url_for
from flask_login import (
    LoginManager,
    UserMixin,
    current_user,
    login_required,
    login_user,
    logout_user,
)
from werkzeug.security import check_password_hash, generate_password_hash

from webservice import ApiUser, WSGate

SessionKind = Literal["cookie", "flask-session"]
SESSION_KINDS: tuple[SessionKind, ...] = ("cookie", "flask-session")
DEFAULT_SECRET_KEY = "host-app-test-secret-key-not-for-production"
#: Flask-Session's key prefix in Redis (tests read and rewrite the stored session data).
FLASK_SESSION_PREFIX = "hostsession:"

# A cheap hash method: the tests log in often, and the hashing itself is not under test.
_HASH_METHOD = "pbkdf2:sha256:1000"


@dataclass(frozen=True)
class HostUser(UserMixin):
    """One of the host's own users (the host's table, not wsgate's)."""

    id: int
    username: str
    password_hash: str
    access_key: str | None
    enabled: bool = True

    def get_id(self) -> str:
        return str(self.id)

    @property
    def is_active(self) -> bool:  # type: ignore[override]
        return self.enabled


def _user(user_id: int, username: str, password: str, access_key: str | None, enabled: bool = True) -> HostUser:
    return HostUser(user_id, username, generate_password_hash(password, _HASH_METHOD), access_key, enabled)


#: Passwords and access keys, for the tests to log in with.
PASSWORDS = {"alice": "alice-password", "bob": "bob-password", "carol": "carol-password"}
ACCESS_KEYS = {"alice": "aLiCeAcCeSsKeY07", "bob": "bObAcCeSsKeY0008", "carol": "cArOlAcCeSsKeY09"}
USERS: dict[str, HostUser] = {
    "alice": _user(7, "alice", PASSWORDS["alice"], ACCESS_KEYS["alice"]),
    "bob": _user(8, "bob", PASSWORDS["bob"], ACCESS_KEYS["bob"]),
    # Disabled on the host: neither the web form nor the API may let her in.
    "carol": _user(9, "carol", PASSWORDS["carol"], ACCESS_KEYS["carol"], enabled=False),
}
USERS_BY_ID: dict[int, HostUser] = {user.id: user for user in USERS.values()}

LOGIN_PAGE = """<!doctype html>
<title>Log in</title>
<form method="post" action="{{ url_for('login', next=next) }}">
  {% if csrf_on %}<input type="hidden" name="csrf_token" value="{{ csrf_token() }}">{% endif %}
  <input name="username"> <input name="password" type="password">
  <button>Log in</button>
</form>
{% if error %}<p class="error">{{ error }}</p>{% endif %}
"""

API_PAGE = """<!doctype html>
<meta name="csrf-token" content="{{ wsgate_csrf_token() }}">
<title>API page</title>
<p>Hello {{ current_user.username }}: this page's script calls extendsession.</p>
"""

#: The host's own page whose own script (static/api.js) gets an API session linked to this
#: browser's login (extendsession, X-CSRFToken from the meta tag), uses it (listtypes) and can
#: end it (logout); the form logs out of the host itself.
APP_PAGE = """<!doctype html>
<meta name="wsgate-csrf" content="{{ wsgate_csrf_token() }}">
<title>Host app</title>
<p>Hello <span id="username">{{ current_user.username }}</span></p>
<p>API session <code id="api-session-name"></code> of <code id="api-user-id"></code></p>
<p>Status: <span id="api-status">starting</span></p>
<p>Types: <span id="api-types"></span></p>
<button id="api-logout" type="button" disabled>API logout</button>
<form method="post" action="{{ url_for('logout') }}">
  {% if csrf_on %}<input type="hidden" name="csrf_token" value="{{ csrf_token() }}">{% endif %}
  <button id="logout">Log out</button>
</form>
<script src="{{ url_for('static', filename='api.js') }}"></script>
"""


def create_host_app(
    redis_url: str | None = None,
    redis_client: Any = None,
    session: SessionKind = "cookie",
    csrf: bool = False,
    *,
    session_redis: Any = None,
    csrf_after_gate: bool = False,
    secret_key: str = DEFAULT_SECRET_KEY,
    config: dict[str, Any] | None = None,
) -> Flask:
    """The host app. ``redis_url`` or ``redis_client`` (a ``decode_responses=True`` client, e.g.
    fakeredis) is the gateway's Redis. ``session="flask-session"`` keeps the session data in
    Redis with Flask-Session, in ``session_redis`` (a bytes client), else in ``redis_url``.
    ``csrf`` adds Flask-WTF's ``CSRFProtect``, before ``WSGate`` or, with ``csrf_after_gate``,
    after it. ``config``: more of the host's settings (``WSGATE_*`` among them), set before
    ``WSGate`` reads them."""
    app = Flask(__name__)
    app.config.update(SECRET_KEY=secret_key, **(config or {}))
    if redis_url is not None:
        app.config["WSGATE_REDIS_URL"] = redis_url
    _init_sessions(app, session, redis_url, session_redis)
    protect = None
    if csrf and not csrf_after_gate:
        from flask_wtf.csrf import CSRFProtect

        protect = CSRFProtect(app)

    gate = WSGate(app, redis_client=redis_client)
    app.extensions["host_gate"] = gate

    if csrf and csrf_after_gate:
        from flask_wtf.csrf import CSRFProtect

        protect = CSRFProtect(app)

    @gate.api_user_loader
    def load_api_user(username: str) -> ApiUser | None:
        user = USERS.get(username)
        if user is None:
            return None
        return ApiUser(user.id, user.username, user.access_key, user.enabled)

    login_manager = LoginManager(app)
    login_manager.login_view = "login"

    @login_manager.user_loader
    def load_user(user_id: str) -> HostUser | None:
        try:
            return USERS_BY_ID.get(int(user_id))
        except ValueError:
            return None

    @app.get("/login")
    def login_form() -> str:
        return render_template_string(
            LOGIN_PAGE, next=request.args.get("next"), csrf_on=protect is not None, error=None
        )

    @app.post("/login")
    def login() -> Any:
        user = USERS.get(request.form.get("username", ""))
        password = request.form.get("password", "")
        if user is None or not check_password_hash(user.password_hash, password) or not user.enabled:
            page = render_template_string(
                LOGIN_PAGE, next=request.args.get("next"), csrf_on=protect is not None,
                error="Wrong username or password",
            )  # fmt: skip
            return page, 401
        login_user(user, remember=request.form.get("remember") == "1")
        target = request.args.get("next") or ""
        # Only local paths: no open redirect.
        return redirect(target if target.startswith("/") and not target.startswith("//") else url_for("index"))

    @app.post("/logout")
    def logout() -> Any:
        logout_user()
        return redirect(url_for("login_form"))

    @app.get("/")
    @login_required
    def index() -> str:
        return f"hello {current_user.username}"

    @app.get("/api-page")
    @login_required
    def api_page() -> str:
        return render_template_string(API_PAGE)

    @app.get("/app")
    @login_required
    def app_page() -> str:
        return render_template_string(APP_PAGE, csrf_on=protect is not None)

    @app.get("/api-token")
    @login_required
    def api_token() -> dict[str, str]:
        """The CSRF token from ``gate.csrf_token()``, for a script that fetches it."""
        return {"csrfToken": gate.csrf_token()}

    @app.get("/whoami")
    def whoami() -> dict[str, Any]:
        """Not login_required: tells whether this browser is anonymous to Flask-Login."""
        if current_user.is_anonymous:
            return {"anonymous": True, "username": None}
        return {"anonymous": False, "username": current_user.username}

    return app


def create_plain_host_app(
    redis_url: str | None = None,
    redis_client: Any = None,
    session: SessionKind = "cookie",
    *,
    session_redis: Any = None,
    secret_key: str = DEFAULT_SECRET_KEY,
) -> Flask:
    """A host without Flask-Login: its views call ``gate.login_web``, ``gate.logout_web`` and
    ``gate.current_web_login`` themselves."""
    app = Flask(__name__)
    app.config.update(SECRET_KEY=secret_key)
    if redis_url is not None:
        app.config["WSGATE_REDIS_URL"] = redis_url
    _init_sessions(app, session, redis_url, session_redis)
    gate = WSGate(app, redis_client=redis_client)
    app.extensions["host_gate"] = gate

    @gate.api_user_loader
    def load_api_user(username: str) -> ApiUser | None:
        user = USERS.get(username)
        return ApiUser(user.id, user.username, user.access_key, user.enabled) if user else None

    @app.post("/signin")
    def signin() -> Any:
        user = USERS.get(request.form.get("username", ""))
        if user is None or not check_password_hash(user.password_hash, request.form.get("password", "")):
            abort(401)
        gate.login_web(user.id, user.username)
        return redirect("/me")

    @app.post("/signout")
    def signout() -> dict[str, bool]:
        return {"was_logged_in": gate.logout_web()}

    @app.get("/me")
    def me() -> dict[str, Any]:
        login = gate.current_web_login()
        if login is None:
            return {"user_id": None, "username": None}
        return {"user_id": login.user_id, "username": login.username}

    return app


def _init_sessions(app: Flask, kind: SessionKind, redis_url: str | None, session_redis: Any) -> None:
    if kind == "cookie":
        return
    if kind != "flask-session":
        raise ValueError(f"unknown session kind {kind!r}")
    from flask_session import Session

    if session_redis is None:
        if redis_url is None:
            raise ValueError("flask-session needs session_redis or redis_url")
        session_redis = redis.Redis.from_url(redis_url)
    app.config.update(
        SESSION_TYPE="redis", SESSION_REDIS=session_redis, SESSION_KEY_PREFIX=FLASK_SESSION_PREFIX
    )
    Session(app)

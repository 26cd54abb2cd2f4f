"""The standalone server's own settings, besides the extension's (webservice/settings.py).

Each is read from the environment variable ``WSGATE_<NAME>`` (JSON when it parses), like the
extension's. The first group are the extension's settings with other defaults here; the rest are
Flask's and Flask-WTF's own keys (unprefixed in ``app.config``) and the server's logging and
proxies.
"""

from __future__ import annotations

from typing import Any

#: Extension settings whose standalone default differs: the probes and metrics are served.
GATE_DEFAULTS: dict[str, Any] = {"METRICS_ENABLED": True, "PROBES_ENABLED": True}

#: Flask and Flask-WTF keys, and the server's own, with their defaults.
SERVER_DEFAULTS: dict[str, Any] = {
    # The web session cookie. It is HttpOnly and SameSite=Lax; Secure unless turned off here for
    # plain-http development (scripts/serve does that when it binds to loopback).
    "SESSION_COOKIE_NAME": "wsgate_session",
    "SESSION_COOKIE_SECURE": True,
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    # Where a web session's data is kept: "cookie" (Flask's signed cookie, as most host apps do:
    # no Redis round trip of its own, so a page view and extendsession cost one and a web login or
    # logout two; the cookie holds the web login's id, signed, HttpOnly, and that id authenticates
    # web requests only) or "redis" (Flask-Session in the gateway's Redis, under a hash of the
    # cookie's session id: one more round trip per page view, three more per login and logout).
    # Either way, whether the browser is logged in is read from its session family.
    "WEB_SESSIONS": "cookie",
    # A web session's data is written only when it changes; whether the browser is logged in is
    # read from its session family.
    "SESSION_REFRESH_EACH_REQUEST": False,
    # CSRF tokens live as long as the web session they belong to.
    "WTF_CSRF_TIME_LIMIT": None,
    # Signs CSRF tokens and flashed messages; the same on every worker and host. Unset, the
    # server makes one and keeps it in Redis, where every worker finds it.
    "SECRET_KEY": None,
    # Logging level of the gateway's own loggers.
    "LOG_LEVEL": "INFO",
    # Proxies (load balancers) every request passes through before the server: their
    # X-Forwarded-* entries are trusted (webservice/serving/proxies.py). 0: ignored.
    "TRUSTED_PROXIES": 0,
}

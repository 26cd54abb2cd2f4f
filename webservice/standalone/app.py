"""The standalone server: a small Flask app that hosts the extension.

``create_app`` = Flask + :class:`~webservice.WSGate` (its users: the Redis user directory) + its
own web UI blueprint (login form, home with "API access", sessions page) + its web sessions
(Flask's signed cookie, or Flask-Session in the same Redis: WEB_SESSIONS) + CSRF protection of its forms + the probes, metrics and proxies of a
deployment. ``wsgi.py`` at the repository root makes one for gunicorn.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

from flask import Flask, Response, abort, current_app, render_template, request
from flask_wtf.csrf import CSRFProtect
from redis.exceptions import RedisError
from werkzeug.exceptions import HTTPException

from webservice import rest
from webservice import settings as gate_settings
from webservice.api import endpoint, envelope
from webservice.api.errors import (
    ErrorCode,
    WebServiceError,
    internal_error,
    method_not_allowed,
    not_confirmed,
    service_unavailable,
)
from webservice.api.gateway import gateway_of
from webservice.api.registry import Operation
from webservice.extension import WSGate
from webservice.serving import health, proxies
from webservice.standalone import cli, web
from webservice.standalone.security_headers import init_security_headers
from webservice.standalone.settings import GATE_DEFAULTS, SERVER_DEFAULTS
from webservice.standalone.web_session import UNAVAILABLE as SESSION_UNAVAILABLE
from webservice.standalone.web_session import SignedCookieSessions, init_web_sessions
from webservice.store.client import RedisClient
from webservice.store.confirmation import NotConfirmed

log = logging.getLogger(__name__)


def create_app(
    settings: Mapping[str, Any] | None = None,
    redis_client: RedisClient | None = None,
    web_session_client: RedisClient | None = None,
    operations: Iterable[Operation] | None = None,
) -> Flask:
    """The standalone server: defaults, then ``WSGATE_*`` environment variables, then
    ``settings`` (by name, with or without the ``WSGATE_`` prefix).

    ``redis_client`` (answering str) and ``web_session_client`` (answering bytes, for
    Flask-Session) replace the clients the settings describe; tests pass fakeredis ones.
    ``operations`` replaces the installed operations.
    """
    # Templates and static files belong to the web blueprint.
    app = Flask(__name__, static_folder=None)
    _configure(app, settings or {})
    _configure_logging(app)
    WSGate(operations=operations, redis_client=redis_client).init_app(app)
    gateway = gateway_of(app)
    kind = app.config["WEB_SESSIONS"]
    if kind == "redis":
        init_web_sessions(app, gateway, web_session_client)
    elif kind == "cookie":
        app.session_interface = SignedCookieSessions()
    else:
        raise ValueError(f'WEB_SESSIONS must be "redis" or "cookie", not {kind!r}')
    app.before_request(_session_store_error)
    # Before CSRFProtect's own check, which fails on such a form.
    app.before_request(_refuse_nameless_form_parts)
    protect = CSRFProtect(app)
    protect.exempt(endpoint.blueprint)
    protect.exempt(rest.blueprint)
    app.register_blueprint(web.blueprint)
    init_security_headers(app)
    proxies.init_app(app)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(RedisError, _redis_error)
    if not app.secret_key:
        app.before_request(_load_shared_secret_key)
    cli.register(app)
    return app


def _configure(app: Flask, given: Mapping[str, Any]) -> None:
    """Fills ``app.config``: every extension setting as ``WSGATE_<NAME>``, the server's own
    under their own names; the environment's ``WSGATE_*`` and then ``given`` override them."""
    gate = gate_settings.defaults()
    config = app.config
    for name, value in {**gate, **GATE_DEFAULTS}.items():
        config[gate_settings.PREFIX + name] = value
    config.update(SERVER_DEFAULTS)

    def put(name: str, value: Any) -> None:
        if name.startswith(gate_settings.PREFIX):
            name = name[len(gate_settings.PREFIX) :]
        if name in gate:
            config[gate_settings.PREFIX + name] = value
        else:
            config[name] = value

    for variable, raw in os.environ.items():
        if variable.startswith(gate_settings.PREFIX):
            try:
                value = json.loads(raw)
            except ValueError:
                value = raw
            put(variable, value)
    for name, value in given.items():
        put(name, value)
    # The whole app, web UI included, takes the endpoint's bounds on requests.
    config["MAX_CONTENT_LENGTH"] = config["WSGATE_MAX_CONTENT_LENGTH"]
    config["MAX_FORM_PARTS"] = config["WSGATE_MAX_FORM_PARTS"]


def _http_error(error: HTTPException) -> Any:
    """Routing errors on the endpoint's paths (e.g. an odd method) still get the envelope.

    Flask hands exceptions raised outside a view (e.g. while opening the web session) to the 500
    handler, wrapped: a Redis failure among them is still SERVICE_UNAVAILABLE.
    """
    if error.code == 500 and isinstance(getattr(error, "original_exception", None), RedisError):
        return _redis_error(error.original_exception)  # type: ignore[attr-defined]
    if request.path not in endpoint.PATHS:
        return error
    if error.code == 413:
        return envelope.failure(endpoint.request_too_large())
    if error.code == 405:
        return envelope.failure(method_not_allowed(request.method))
    if error.code == 500:
        return envelope.failure(internal_error())
    return envelope.failure(
        WebServiceError(ErrorCode.INVALID_PARAMETER, f"Malformed request: {error.description}")
    )


def _redis_error(error: RedisError) -> Response | tuple[str, int]:
    """Redis failing outside the endpoint's own handling (page views, the secret-key hook)."""
    if isinstance(error, NotConfirmed):
        log.warning("not confirmed by the replicas: %s", error)
        if request.path in endpoint.PATHS:
            return envelope.failure(not_confirmed(error.what))
        title = f"{error.what} not confirmed"
        message = (
            f"Your {error.what.lower()} is made, but the session store could not confirm it yet. "
            "Please try again."
        )
        return render_template("error.html", title=title, message=message), 503
    log.warning("session store unavailable: %s", type(error).__name__)
    if request.path in endpoint.PATHS:
        return envelope.failure(service_unavailable())
    message = "The session store is unreachable. Nothing is lost; try again shortly."
    return render_template("error.html", title="Temporarily unavailable", message=message), 503


def _session_store_error() -> None:
    """Raises the Redis error met while this request's web session was opened (web_session.py),
    where the error handlers answer it: the 503 page, or the endpoint's SERVICE_UNAVAILABLE."""
    error = request.environ.get(SESSION_UNAVAILABLE)
    if error is not None and request.endpoint not in health.REDIS_FREE_ENDPOINTS:
        raise error


#: The methods whose forms Flask-WTF's CSRFProtect reads (its default WTF_CSRF_METHODS).
_FORM_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _refuse_nameless_form_parts() -> None:
    """Answers 400 to a web page's multipart form with a part whose Content-Disposition names
    nothing: Werkzeug reads it under the name None, on which Flask-WTF's CSRF check fails with an
    AttributeError (a 500). webservice.php and the REST API read their forms themselves."""
    if (
        request.method in _FORM_METHODS
        and request.mimetype == "multipart/form-data"
        and request.blueprint not in (endpoint.blueprint.name, rest.blueprint.name)
        and None in request.form
    ):
        abort(400, "Malformed form: a part without a name")


def _load_shared_secret_key() -> None:
    """With no SECRET_KEY configured, every worker and host uses one kept in Redis.

    Made once with ``secrets`` and stored with SET NX, so the first process to need it wins and the
    others read the same value. Configuring WSGATE_SECRET_KEY keeps it out of Redis.
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if app.secret_key or request.endpoint in health.REDIS_FREE_ENDPOINTS:
        return
    gateway = gateway_of(app)
    key = gateway.keys.secret_key()
    gateway.redis.set(key, secrets.token_urlsafe(48), nx=True)
    app.secret_key = gateway.redis.get(key)


def _configure_logging(app: Flask) -> None:
    level = str(app.config["LOG_LEVEL"]).upper()
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in ("webservice", "operations"):
        logging.getLogger(name).setLevel(level)

"""The app factory."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, current_app, render_template, request
from redis.exceptions import RedisError
from werkzeug.exceptions import HTTPException

from webservice import cli
from webservice.api import endpoint, envelope, openapi
from webservice.serving import health, metrics, proxies, request_log
from webservice.standalone import web
from webservice.auth.csrf import init_csrf
from webservice.api.errors import (
    ErrorCode,
    WebServiceError,
    internal_error,
    method_not_allowed,
    service_unavailable,
)
from webservice.gateway import EXTENSION_KEY, Gateway
from webservice.store.client import RedisClient
from webservice.serving.security_headers import init_security_headers
from webservice.auth.web_login import init_web_sessions

log = logging.getLogger(__name__)


def create_app(
    settings: Mapping[str, Any] | None = None,
    redis_client: RedisClient | None = None,
    web_session_client: RedisClient | None = None,
) -> Flask:
    """A wsgate app: ``webservice.settings``, then ``WSGATE_*`` variables, then ``settings``.

    ``redis_client`` (answering str) and ``web_session_client`` (answering bytes, for
    Flask-Session) replace the clients the settings describe; tests pass fakeredis ones.
    """
    # Imported here: the operations import webservice, and webservice finds them only through
    # the registry.
    from operations import BUILTIN_OPERATIONS
    from webservice.api.registry import OperationRegistry

    # Templates and static files belong to the web blueprint.
    app = Flask(__name__, static_folder=None)
    app.config.from_object("webservice.settings")
    app.config.from_prefixed_env("WSGATE")
    if settings:
        app.config.update(settings)
    _configure_logging(app)

    registry = OperationRegistry.discover(BUILTIN_OPERATIONS)
    gateway = Gateway.build(app.config, registry, redis_client)
    app.extensions[EXTENSION_KEY] = gateway
    init_web_sessions(app, gateway, web_session_client)
    init_csrf(app, exempt=endpoint.blueprint)
    app.register_blueprint(endpoint.blueprint)
    app.register_blueprint(web.blueprint)
    app.register_blueprint(openapi.blueprint)
    init_security_headers(app)
    # Deployment: probes, metrics, the request log, and the proxies in front (outermost).
    health.init_app(app, redis_client)
    metrics.init_app(app)
    request_log.init_app(app, endpoint.PATHS, endpoint.answered_elsewhere)
    proxies.init_app(app)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(RedisError, _redis_error)
    if not app.secret_key:
        app.before_request(_load_shared_secret_key)
    cli.register(app)
    return app


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
    log.warning("session store unavailable: %s", type(error).__name__)
    if request.path in endpoint.PATHS:
        return envelope.failure(service_unavailable())
    message = "The session store is unreachable. Nothing is lost; try again shortly."
    return render_template("error.html", title="Temporarily unavailable", message=message), 503


def _load_shared_secret_key() -> None:
    """With no SECRET_KEY configured, every worker and host uses one kept in Redis.

    Made once with ``secrets`` and stored with SET NX, so the first process to need it wins and the
    others read the same value. Configuring WSGATE_SECRET_KEY keeps it out of Redis.
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if app.secret_key or request.endpoint in health.REDIS_FREE_ENDPOINTS:
        return
    gateway = app.extensions[EXTENSION_KEY]
    key = gateway.keys.secret_key()
    gateway.redis.set(key, secrets.token_urlsafe(48), nx=True)
    app.secret_key = gateway.redis.get(key)


def _configure_logging(app: Flask) -> None:
    level = str(app.config["LOG_LEVEL"]).upper()
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in ("webservice", "operations"):
        logging.getLogger(name).setLevel(level)

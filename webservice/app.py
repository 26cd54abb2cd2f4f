"""The app factory."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from webservice import cli, endpoint, envelope
from webservice.errors import ErrorCode, WebServiceError
from webservice.gateway import EXTENSION_KEY, Gateway
from webservice.redis_client import RedisClient


def create_app(
    settings: Mapping[str, Any] | None = None, redis_client: RedisClient | None = None
) -> Flask:
    """A wsgate app: ``config.defaults``, then ``WSGATE_*`` variables, then ``settings``.

    ``redis_client`` replaces the client the settings describe (tests pass a fakeredis one).
    """
    # Imported here: the operations import webservice, and webservice finds them only through
    # the registry.
    from operations import BUILTIN_OPERATIONS
    from operations.registry import OperationRegistry

    app = Flask(__name__)
    app.config.from_object("config.defaults")
    app.config.from_prefixed_env("WSGATE")
    if settings:
        app.config.update(settings)
    _configure_logging(app)

    registry = OperationRegistry.discover(BUILTIN_OPERATIONS)
    app.extensions[EXTENSION_KEY] = Gateway.build(app.config, registry, redis_client)
    app.register_blueprint(endpoint.blueprint)
    app.register_error_handler(HTTPException, _http_error)
    cli.register(app)
    return app


def _http_error(error: HTTPException) -> Response | HTTPException:
    """Routing errors on the endpoint's paths (e.g. an odd method) still get the envelope."""
    if request.path not in endpoint.PATHS:
        return error
    if error.code == 413:
        return envelope.failure(endpoint.request_too_large())
    return envelope.failure(
        WebServiceError(ErrorCode.INVALID_PARAMETER, f"Malformed request: {error.description}")
    )


def _configure_logging(app: Flask) -> None:
    level = str(app.config["LOG_LEVEL"]).upper()
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in ("webservice", "operations"):
        logging.getLogger(name).setLevel(level)

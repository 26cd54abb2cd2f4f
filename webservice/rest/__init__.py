"""The REST session API beside webservice.php, under ``/v1``: views.py says what it serves,
description.py how ``/openapi.json`` describes it."""

from __future__ import annotations

from typing import Any

from flask import Flask, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from webservice.api import openapi
from webservice.rest.description import describe
from webservice.rest.views import PREFIX, blueprint, method_not_allowed

__all__ = ["blueprint", "init_app"]


def init_app(app: Flask) -> None:
    """Serves the API and describes it in the app's ``/openapi.json``."""
    app.register_blueprint(blueprint)
    openapi.add_part(app, describe)
    _chain_method_not_allowed(app)


def _chain_method_not_allowed(app: Flask) -> None:
    """Answers a method that no route takes, on these paths, with problem details; the app's
    own 405 handler (webservice.php's, or the host's) still answers everywhere else."""
    previous = app.error_handler_spec[None].get(405, {}).get(MethodNotAllowed)

    def answer(error: HTTPException) -> Any:
        if request.path.startswith(PREFIX + "/"):
            return method_not_allowed(error)
        return previous(error) if previous is not None else error

    app.register_error_handler(405, answer)

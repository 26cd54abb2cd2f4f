"""The REST session API beside webservice.php, under ``/v1``: views.py says what it serves,
description.py how ``/openapi.json`` describes it."""

from __future__ import annotations

from flask import Flask

from webservice.api import openapi
from webservice.rest.description import describe
from webservice.rest.views import blueprint

__all__ = ["blueprint", "init_app"]


def init_app(app: Flask) -> None:
    """Serves the API and describes it in the app's ``/openapi.json``."""
    app.register_blueprint(blueprint)
    openapi.add_part(app, describe)

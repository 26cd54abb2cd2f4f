"""An app's gateway: its services and its operations, kept in ``app.extensions["wsgate"]``."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app

from webservice.api.registry import OperationRegistry
from webservice.services import Services

EXTENSION_KEY = "wsgate"


@dataclass(frozen=True)
class Gateway(Services):
    operations: OperationRegistry


def gateway_of(app: Flask) -> Gateway:
    """The gateway of ``app`` (raises KeyError when WSGate was not initialised on it)."""
    return app.extensions[EXTENSION_KEY]


def current_gateway() -> Gateway:
    """The gateway of the running Flask app."""
    return current_app.extensions[EXTENSION_KEY]

"""The ``flask ...`` commands every WSGate app has: ``operations``, ``sessions`` and ``audit``
(gateway.py), and ``notifications`` (notifications.py)."""

from __future__ import annotations

from flask import Flask

from webservice.cli import gateway, notifications


def register(app: Flask) -> None:
    gateway.register(app)
    notifications.register(app)

"""Probes for load balancers and orchestrators.

``GET /healthz``
    The process is up and serving: ``200 {"status": "ok"}``, without asking Redis.
``GET /readyz``
    Redis answers: one ``PING`` with a short timeout (``READY_TIMEOUT`` seconds to connect and to
    answer; no retry, so a hung Redis is answered within that). ``200 {"status":
    "ready"}``, else ``503 {"status": "unavailable", "redis": "<error class>"}``.

The probe's client is its own (connected on first use, per worker): a hung Redis then answers the
probe within its own short timeout rather than the requests' longer ones. Neither probe touches
Redis otherwise: no web session, no shared secret key.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify
from redis.exceptions import RedisError

from webservice.store.client import RedisClient, connect

blueprint = Blueprint("health", __name__)
#: Endpoints that must answer without Redis (app.py skips its Redis-backed hooks for them).
REDIS_FREE_ENDPOINTS = frozenset({"health.healthz", "health.readyz", "metrics"})
EXTENSION_KEY = "wsgate.readiness"


class Readiness:
    """Pings Redis with the probe's own short timeouts (or through a client it is given)."""

    def __init__(self, settings: Mapping[str, Any], client: RedisClient | None = None) -> None:
        self._settings = settings
        self._client = client
        self._lock = threading.Lock()

    @property
    def client(self) -> RedisClient:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    timeout = float(self._settings["READY_TIMEOUT"])
                    self._client = connect(
                        {
                            **self._settings,
                            "REDIS_CONNECT_TIMEOUT": timeout,
                            "REDIS_SOCKET_TIMEOUT": timeout,
                            # One try: a probe that waited for a retry on a hung Redis would
                            # stretch past its timeout (a dead pooled connection fails one probe).
                            "REDIS_RETRIES": 0,
                        }
                    )
        return self._client

    def check(self) -> str | None:
        """None when Redis answers the PING, else the name of the error."""
        try:
            self.client.ping()
        except RedisError as error:
            return type(error).__name__
        return None


@blueprint.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


@blueprint.get("/readyz")
def readyz() -> tuple[Response, int]:
    failure = current_app.extensions[EXTENSION_KEY].check()
    if failure is None:
        return jsonify(status="ready"), 200
    return jsonify(status="unavailable", redis=failure), 503


def init_app(app: Flask, settings: Mapping[str, Any], client: RedisClient | None = None) -> None:
    """Serves the probes (``settings``: the extension's); ``client`` (tests) replaces the probe's
    own Redis client."""
    app.extensions[EXTENSION_KEY] = Readiness(settings, client)
    app.register_blueprint(blueprint)

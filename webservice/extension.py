"""``WSGate``: the Flask extension that gives an app a coreBOS-compatible ``webservice.php``.

::

    gate = WSGate(app)          # or: gate = WSGate(); gate.init_app(app) in an app factory

``init_app`` reads its settings from ``app.config`` (``WSGATE_*``, defaults in settings.py),
keeps the app's :class:`~webservice.api.gateway.Gateway` in ``app.extensions["wsgate"]`` (the
extension object itself holds no app, so one ``WSGate`` serves several apps), and registers:

- ``/webservice.php`` and ``/webservice`` (requests without a cookie take the lean path around
  Flask, api/lean_path.py), the REST session API under ``/v1`` (unless ``WSGATE_REST_ENABLED``
  is off), and ``/openapi.json`` describing them;
- the operations: every ``wsgate.operations`` entry point (the built-ins among them), or the
  ``operations`` given;
- the web-login link: with Flask-Login on the app, ``login_user`` / ``logout_user`` start and end
  session families (auth/flask_login.py); else :meth:`WSGate.login_web` and friends;
- the audit trail and the metrics, as receivers of the session events (webservice.events);
- with ``WSGATE_LOGOUT_RECEIVERS``, the logout notifications (webservice.notifications): their
  outbox entries ride with every ending, and ``/.well-known/jwks.json`` publishes their keys;
- the ``flask operations``, ``flask sessions``, ``flask audit`` and ``flask notifications``
  commands;
- ``/healthz``, ``/readyz`` and ``/metrics`` only when ``WSGATE_PROBES_ENABLED`` /
  ``WSGATE_METRICS_ENABLED`` say so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask

from webservice import cli, rest, settings
from webservice.api import endpoint, jwks, lean_path, openapi
from webservice.api.errors import wire_profile
from webservice.api.gateway import EXTENSION_KEY, Gateway, current_gateway, gateway_of
from webservice.api.registry import Operation, OperationRegistry, installed_operations
from webservice.auth import csrf
from webservice.auth.trail import record_events
from webservice.auth.users import ApiUserLoader
from webservice.notifications import metrics as notification_metrics
from webservice.notifications.announce import notify_on_endings
from webservice.serving import health, metrics, request_log
from webservice.store.client import RedisClient
from webservice.store.session_values import Session

F = Callable[..., Any]


class WSGate:
    """The extension. ``operations`` replaces the installed operations (an iterable of
    :class:`~webservice.api.registry.Operation`); ``redis_client`` the client the settings
    describe (tests pass fakeredis)."""

    def __init__(
        self,
        app: Flask | None = None,
        *,
        operations: Iterable[Operation] | None = None,
        redis_client: RedisClient | None = None,
    ) -> None:
        self._operations = list(operations) if operations is not None else None
        self._redis_client = redis_client
        self._api_user_loader: ApiUserLoader | None = None
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        for name, value in settings.defaults().items():
            app.config.setdefault(settings.PREFIX + name, value)
        config = settings.read(app.config)
        wire_profile(config["WIRE_PROFILE"])
        operations = self._operations if self._operations is not None else installed_operations()
        gateway = Gateway.build(
            config,
            self._redis_client,
            lambda: self._api_user_loader,
            operations=OperationRegistry.of(operations),
        )
        app.extensions[EXTENSION_KEY] = gateway
        endpoint.init_app(app)
        lean_path.init_app(app)
        app.register_blueprint(openapi.blueprint)
        csrf.init_app(app, exempt=(endpoint.blueprint, rest.blueprint))
        if config["REST_ENABLED"]:
            rest.init_app(app)
        record_events(app, gateway.audit)
        metrics.count_events(app)
        notify_on_endings(app, gateway.outbox, gateway.notifications.receivers)
        if gateway.notifications.enabled:
            app.register_blueprint(jwks.blueprint)
        request_log.init_app(app, endpoint.PATHS, endpoint.answered_elsewhere)
        if config["PROBES_ENABLED"]:
            health.init_app(app, config, self._redis_client)
        if config["METRICS_ENABLED"]:
            metrics.init_app(app)
            if gateway.notifications.enabled:
                metrics.add_source(app, lambda: notification_metrics.exposition(gateway.outbox))
        _link_flask_login(app)
        cli.register(app)

    # --- host users -------------------------------------------------------------------------

    def api_user_loader(self, loader: F) -> F:
        """Decorates ``username -> ApiUser | None``: where getchallenge and login find users.
        Without one, the Redis user directory is used (the standalone server's)."""
        self._api_user_loader = loader
        return loader

    # --- the web login, without Flask-Login --------------------------------------------------

    def login_web(self, user_id: int, username: str) -> Session:
        """Logs this browser in: a session family rooted in its login (call from a login view)."""
        return current_gateway().web.login(int(user_id), username)

    def logout_web(self) -> bool:
        """Logs this browser out, with every API session linked to its login; says whether
        there was a live login."""
        return current_gateway().web.logout()

    def current_web_login(self) -> Session | None:
        """This browser's live web login (checked once per request, in one round trip)."""
        return current_gateway().web.current()

    @staticmethod
    def csrf_token() -> str:
        """The token an in-page script sends in ``X-CSRFToken`` with ``extendsession``."""
        return csrf.csrf_token()


def _link_flask_login(app: Flask) -> None:
    """Links Flask-Login's logins to session families when Flask-Login is installed (its
    signals fire only for an app that has a LoginManager)."""
    try:
        import flask_login  # noqa: F401
    except ImportError:  # pragma: no cover - Flask-Login is optional
        return
    from webservice.auth.flask_login import link_flask_login

    link_flask_login(app, lambda sender: gateway_of(sender).web)

"""The host app for gunicorn: ``gunicorn -c config/gunicorn.conf.py tests.host.wsgi_host:app``.

Reads ``HOST_REDIS_URL`` (required), ``HOST_SESSION`` (``cookie`` or ``flask-session``),
``HOST_CSRF`` (``1``: Flask-WTF's CSRFProtect) and ``HOST_SECRET_KEY`` (shared by every worker).
Only gunicorn imports this module; unit tests import ``tests.host.hostapp``.
"""

from __future__ import annotations

import os

from tests.host.hostapp import DEFAULT_SECRET_KEY, create_host_app

app = create_host_app(
    redis_url=os.environ["HOST_REDIS_URL"],
    session=os.environ.get("HOST_SESSION", "cookie"),  # type: ignore[arg-type]
    csrf=os.environ.get("HOST_CSRF") == "1",
    secret_key=os.environ.get("HOST_SECRET_KEY", DEFAULT_SECRET_KEY),
)

"""Behind load balancers and reverse proxies: ``TRUSTED_PROXIES``.

With ``TRUSTED_PROXIES = n`` (n > 0) the app is wrapped in Werkzeug's ``ProxyFix``, trusting the
last ``n`` entries of ``X-Forwarded-For``, ``X-Forwarded-Proto``, ``X-Forwarded-Host`` and
``X-Forwarded-Port``, the ones the ``n`` proxies in front of the gateway appended. Then the
request's address is the client's (session listings, the audit trail, the login and getchallenge
limits, the request log) and its scheme and host are the ones the client used (the same-origin
check of ``extendsession``, the web cookie, redirects). Entries further left were written by the
client and are ignored, so a client cannot pose as another address.

With 0 (the default) those headers are ignored: the client is the peer the WSGI server sees. Set
exactly the number of proxies that every request passes through: one too many lets clients choose
their address, one too few makes the nearest proxy everybody's address.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix


def trusted_proxies(value: Any) -> int:
    """``TRUSTED_PROXIES`` as a count of hops; raises ValueError unless a whole number >= 0."""
    if isinstance(value, bool):
        raise ValueError(f"TRUSTED_PROXIES must be a number of proxies, not {value!r}")
    try:
        hops = int(str(value).strip())
    except ValueError:
        raise ValueError(f"TRUSTED_PROXIES must be a number of proxies, not {value!r}") from None
    if hops < 0:
        raise ValueError(f"TRUSTED_PROXIES must be 0 or more, not {hops}")
    return hops


def init_app(app: Flask) -> None:
    hops = trusted_proxies(app.config["TRUSTED_PROXIES"])
    if hops:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops, x_prefix=0
        )

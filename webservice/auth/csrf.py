"""Cross-site request protection: CSRF tokens for the web UI's forms, and the same-origin rule of
``extendsession`` (the one operation of webservice.php that a cookie authenticates)."""

from __future__ import annotations

from flask import Blueprint, Flask, current_app, request
from flask_wtf.csrf import CSRFProtect, ValidationError, validate_csrf

CSRF_HEADER = "X-CSRFToken"

csrf = CSRFProtect()


def init_csrf(app: Flask, exempt: Blueprint) -> None:
    """Every POST of the web UI needs the token; ``exempt`` (webservice.php) is authenticated by
    session ids, not cookies, and extendsession checks :func:`origin_verdict` and
    :func:`has_valid_csrf_header` itself."""
    csrf.init_app(app)
    csrf.exempt(exempt)


def own_origin() -> str:
    return f"{request.scheme}://{request.host}"


def origin_verdict() -> bool | None:
    """Whether the request's ``Origin`` is the gateway's own or a trusted one; ``None`` if absent.

    Browsers send ``Origin`` on cross-site POSTs, so a foreign one is refused outright, whatever
    cookie and token come with it.
    """
    origin = request.headers.get("Origin")
    if origin is None:
        return None
    return origin == own_origin() or origin in current_app.config["TRUSTED_ORIGINS"]


def has_valid_csrf_header() -> bool:
    """Whether ``X-CSRFToken`` carries this web session's CSRF token."""
    token = request.headers.get(CSRF_HEADER)
    if not token:
        return False
    try:
        validate_csrf(token)
    except ValidationError:
        return False
    return True

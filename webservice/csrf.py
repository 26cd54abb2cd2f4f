"""Cross-site request protection: CSRF tokens for the web UI's forms, and the same-origin rule of
``extendsession`` (the one operation of webservice.php that a cookie authenticates)."""

from __future__ import annotations

from flask import Blueprint, Flask, current_app, request
from flask_wtf.csrf import CSRFProtect, ValidationError, validate_csrf

CSRF_HEADER = "X-CSRFToken"

csrf = CSRFProtect()


def init_csrf(app: Flask, exempt: Blueprint) -> None:
    """Every POST of the web UI needs the token; ``exempt`` (webservice.php) is authenticated by
    session ids, not cookies, and checks extendsession itself with :func:`is_same_origin`."""
    csrf.init_app(app)
    csrf.exempt(exempt)


def own_origin() -> str:
    return f"{request.scheme}://{request.host}"


def is_same_origin() -> bool:
    """Whether this request surely comes from the gateway's own pages (or a trusted origin).

    A request that names its ``Origin`` is judged by it alone: a foreign origin is refused even
    with a valid cookie and token. One without ``Origin`` must carry a valid CSRF token in the
    ``X-CSRFToken`` header.
    """
    origin = request.headers.get("Origin")
    if origin is not None:
        return origin == own_origin() or origin in current_app.config["TRUSTED_ORIGINS"]
    token = request.headers.get(CSRF_HEADER)
    if not token:
        return False
    try:
        validate_csrf(token)
    except ValidationError:
        return False
    return True

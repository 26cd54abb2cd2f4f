"""Cross-site request protection for ``extendsession``, the one operation of webservice.php that
a cookie authenticates: the same-origin rule, and the CSRF token an in-page script sends.

The token is Flask-WTF's (signed with the app's SECRET_KEY, tied to the browser's session), so a
host that already uses Flask-WTF shares it; its ``CSRFProtect``, if the host has one, leaves
webservice.php alone (session ids, not cookies, authenticate it, and extendsession checks for
itself).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask import Blueprint, Flask, Request, request
from flask_wtf.csrf import ValidationError, generate_csrf, validate_csrf

from webservice.auth.browser import Browser

CSRF_HEADER = "X-CSRFToken"
#: The Jinja global that gives a page the token (``{{ wsgate_csrf_token() }}``).
TEMPLATE_GLOBAL = "wsgate_csrf_token"


def init_app(app: Flask, exempt: Iterable[Blueprint]) -> None:
    """Offers the token to templates, and exempts the ``exempt`` blueprints (which check for
    themselves) from the host's CSRFProtect: now if it has one, else on the app's first request
    (a CSRFProtect set up after this extension)."""
    app.add_template_global(csrf_token, TEMPLATE_GLOBAL)
    exempt = tuple(exempt)
    if _exempt(app, exempt):
        return
    done = False

    def exempt_once() -> None:
        nonlocal done
        if not done:
            done = _exempt(app, exempt)

    # First in line, so that it runs before CSRFProtect's own check (and stays: Flask is
    # iterating over this list when it runs).
    app.before_request_funcs.setdefault(None, []).insert(0, exempt_once)


def _exempt(app: Flask, blueprints: tuple[Blueprint, ...]) -> bool:
    protect: Any = app.extensions.get("csrf")
    if protect is None:
        return False
    for blueprint in blueprints:
        protect.exempt(blueprint)
    return True


def csrf_token() -> str:
    return generate_csrf()


def request_origin(of: Request | None = None) -> str:
    """The app's origin as request ``of`` (default: this request) names it (its Host header, or a
    trusted proxy's)."""
    req = of if of is not None else request
    return f"{req.scheme}://{req.host}"


def origin_verdict(
    public_origins: Iterable[str], trusted_origins: Iterable[str], of: Request | None = None
) -> bool | None:
    """Whether the ``Origin`` of request ``of`` (default: this request) is the app's own (one of
    ``public_origins``; when none is configured, the request's own) or a trusted one; ``None`` if
    absent.

    Browsers send ``Origin`` on cross-site POSTs, so a foreign one is refused outright, whatever
    cookie and token come with it. With ``public_origins`` configured, the request's Host header
    is not consulted at all: a client cannot pass the check by naming its own origin as the host.
    """
    req = of if of is not None else request
    origin = req.headers.get("Origin")
    if origin is None:
        return None
    own = list(public_origins) or [request_origin(req)]
    return origin in own or origin in trusted_origins


def has_valid_csrf_header(browser: Browser | None = None) -> bool:
    """Whether ``X-CSRFToken`` carries this browser's CSRF token (default: this request's).
    Flask-WTF checks it in Flask's request context: outside it (the lean path), a browser that
    sends a token raises NeedsRequestContext (auth/browser.py)."""
    req = browser.request if browser is not None else request
    token = req.headers.get(CSRF_HEADER)
    if not token:
        return False
    if browser is not None:
        browser.require_request_context()
    try:
        validate_csrf(token)
    except ValidationError:
        return False
    return True

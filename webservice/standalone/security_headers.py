"""Security headers on every answer of the standalone server: strict ones on its web pages.

- Web pages (HTML): a Content-Security-Policy that allows only the gateway's own files (the pages
  load one stylesheet and one script from ``/static``, with no inline script or style), no
  framing, no ``<base>``, forms posting only to the gateway; ``X-Frame-Options: DENY`` for older
  browsers; ``Referrer-Policy: same-origin``; ``Cache-Control: no-store`` (pages show the user's
  sessions and carry CSRF tokens). Not ``no-referrer``: under it browsers send ``Origin: null``
  on the pages' own POSTs (Fetch standard, "append a request Origin header"), which
  extendsession's same-origin check must refuse, and no ``Referer``, which Flask-WTF requires on
  HTTPS form posts; ``same-origin`` keeps both for the gateway and sends nothing elsewhere.
- ``webservice.php`` (and any other non-HTML answer, e.g. ``/openapi.json``): ``default-src
  'none'`` (a JSON answer opened as a page can load and run nothing), and on the endpoint
  ``Cache-Control: no-store`` (its answers hold session ids and tokens).
- Everything: ``X-Content-Type-Options: nosniff``.

A view that sets one of these headers itself keeps its own value.
"""

from __future__ import annotations

from flask import Flask, Response, request

from webservice.api.endpoint import HEADERS as ENDPOINT_HEADERS
from webservice.api.endpoint import PATHS as ENDPOINT_PATHS

#: The web pages' policy. The pages use only /static/style.css and /static/api-access.js, and
#: api-access.js calls webservice.php on the same origin (connect-src 'self').
PAGE_CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    )
)
#: Anything that is not a page: nothing may load or run, nobody may frame it.
DATA_CSP = "default-src 'none'; frame-ancestors 'none'"

_PAGE_HEADERS = (
    ("Content-Security-Policy", PAGE_CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
    ("Cache-Control", "no-store"),
)
_OTHER_HEADERS = (
    ("Content-Security-Policy", DATA_CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
)


def init_security_headers(app: Flask) -> None:
    app.after_request(add_security_headers)


def add_security_headers(response: Response) -> Response:
    """Pages, static files, /openapi.json, and the endpoint's routing errors (the endpoint's own
    answers carry its headers already: its blueprint adds them)."""
    if request.path in ENDPOINT_PATHS:
        chosen = ENDPOINT_HEADERS
    elif response.mimetype == "text/html":
        chosen = _PAGE_HEADERS
    else:
        chosen = _OTHER_HEADERS
    headers = response.headers
    for name, value in chosen:
        if name not in headers:
            headers[name] = value
    return response

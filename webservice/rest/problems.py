"""RFC 9457 problem details: how every error of the REST session API is answered.

A view raises :class:`Problem`; the blueprint's handlers (views.py) turn it, any HTTP error Flask
or a host raises on these paths (a host's rate limiter's 429, say), and a Redis failure into an
``application/problem+json`` answer: ``type`` (``about:blank``, so ``title`` is the status
phrase), ``title``, ``status``, and a ``detail`` meant for the person reading it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from http import HTTPStatus

from flask import Response

MEDIA_TYPE = "application/problem+json"


class Problem(Exception):
    """An error answered as problem details, with ``headers`` (``WWW-Authenticate``, ``Allow``,
    ``Retry-After``) added to the answer."""

    def __init__(
        self, status: int, detail: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = dict(headers or {})

    def response(self) -> Response:
        return problem_response(self.status, self.detail, self.headers)


def problem_response(
    status: int, detail: str, headers: Mapping[str, str] | None = None
) -> Response:
    body = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    response = Response(json.dumps(body), status=status, mimetype=MEDIA_TYPE)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response

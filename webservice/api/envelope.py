"""The ``{"success": ...}`` envelope every ``webservice.php`` answer is wrapped in (protocol.md §3),
in the exact shape a real coreBOS sends: ``{"success": true, "result": …, "moreinfo": null}`` or
``{"success": false, "error": {"message": …, "code": …}, "moreinfo": null}``.

Always HTTP 200 with ``Content-Type: application/json``: several clients throw away the body of
any other status, so errors travel inside the envelope.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Response

from webservice.api.errors import WebServiceError

MIMETYPE = "application/json"
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode


def failure(error: WebServiceError) -> Response:
    return response(failure_body(error))


def success_body(result: Any) -> bytes:
    return _encode({"success": True, "result": result, "moreinfo": None}).encode()


def failure_body(error: WebServiceError) -> bytes:
    """coreBOS's exact shape: ``message`` before ``code``, and ``moreinfo``."""
    body = {"message": error.message, "code": error.code}
    return _encode({"success": False, "error": body, "moreinfo": None}).encode()


def response(body: bytes) -> Response:
    return Response(body, status=200, mimetype=MIMETYPE)

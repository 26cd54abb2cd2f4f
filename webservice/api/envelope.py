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

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode


def success(result: Any) -> Response:
    return _respond({"success": True, "result": result, "moreinfo": None})


def failure(error: WebServiceError) -> Response:
    """coreBOS's exact shape: ``message`` before ``code``, and ``moreinfo``."""
    body = {"message": error.message, "code": error.code}
    return _respond({"success": False, "error": body, "moreinfo": None})


def _respond(body: dict[str, Any]) -> Response:
    return Response(_encode(body), status=200, mimetype="application/json")

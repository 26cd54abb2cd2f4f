"""The ``{"success": ...}`` envelope every ``webservice.php`` answer is wrapped in (protocol.md §3).

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
    return _respond({"success": True, "result": result})


def failure(error: WebServiceError) -> Response:
    return _respond({"success": False, "error": {"code": error.code, "message": error.message}})


def _respond(body: dict[str, Any]) -> Response:
    return Response(_encode(body), status=200, mimetype="application/json")

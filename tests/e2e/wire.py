"""Raw HTTP calls to a live gateway, checking what every answer of webservice.php must be:
HTTP 200, ``Content-Type: application/json``, and the envelope with a real boolean ``success``."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import requests

TIMEOUT = 10


def check_envelope(response: requests.Response) -> dict:
    assert response.status_code == 200, (response.status_code, response.text[:500])
    mimetype = response.headers.get("Content-Type", "").split(";")[0].strip()
    assert mimetype == "application/json", response.headers.get("Content-Type")
    body = response.json()
    assert isinstance(body, dict) and isinstance(body.get("success"), bool), body
    if body["success"]:
        assert set(body) == {"success", "result", "moreinfo"}, body
    else:
        assert set(body) == {"success", "error", "moreinfo"}, body
        assert set(body["error"]) == {"code", "message"}, body
        assert isinstance(body["error"]["code"], str) and body["error"]["code"], body
        assert isinstance(body["error"]["message"], str), body
    return body


def send(
    base_url: str,
    method: str = "GET",
    query: str = "",
    *,
    path: str = "/webservice.php",
    fresh_connection: bool = False,
    **kwargs: Any,
) -> dict:
    """One request; ``query`` is appended to the URL as it is (``?&operation=...`` stays so)."""
    if fresh_connection:
        kwargs["headers"] = {**kwargs.get("headers", {}), "Connection": "close"}
    response = requests.request(method, base_url + path + query, timeout=TIMEOUT, **kwargs)
    return check_envelope(response)


def code(answer: dict) -> str | None:
    return None if answer["success"] else answer["error"]["code"]


def proof(token: str, access_key: str) -> str:
    return hashlib.md5((token + access_key).encode()).hexdigest()


def add_user(gateway: Any, username: str) -> str:
    """Adds a user through the operators' CLI; answers its access key."""
    done = gateway.flask("users", "add", username, "--json")
    record = json.loads(done.stdout.strip().splitlines()[-1])
    assert record["username"] == username
    return record["accessKey"]

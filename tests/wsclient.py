"""A minimal coreBOS web service client for the tests, over a Flask test client or real HTTP."""

from __future__ import annotations

import hashlib
from typing import Any, Protocol


class Transport(Protocol):
    def __call__(self, method: str, params: dict[str, Any], headers: dict[str, str]) -> dict: ...


def flask_transport(test_client: Any, path: str = "/webservice.php") -> Transport:
    def send(method: str, params: dict[str, Any], headers: dict[str, str]) -> dict:
        if method == "GET":
            response = test_client.get(path, query_string=params, headers=headers)
        else:
            response = test_client.post(path, data=params, headers=headers)
        assert response.status_code == 200, response.data
        assert response.mimetype == "application/json"
        return response.get_json()

    return send


def http_transport(base_url: str, session: Any = None) -> Transport:
    import requests

    http = session or requests.Session()

    def send(method: str, params: dict[str, Any], headers: dict[str, str]) -> dict:
        url = f"{base_url}/webservice.php"
        if method == "GET":
            response = http.get(url, params=params, headers=headers, timeout=10)
        else:
            response = http.post(url, data=params, headers=headers, timeout=10)
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"].startswith("application/json")
        return response.json()

    return send


class WebServiceClient:
    """Speaks the wire contract; answers are the raw envelopes."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.session_name: str | None = None

    def call(self, operation: str, method: str = "POST", headers: dict | None = None, **params: Any) -> dict:
        return self.transport(method, {"operation": operation, **params}, headers or {})

    def login(self, username: str, access_key: str) -> dict:
        challenge = self.call("getchallenge", "GET", username=username)
        assert challenge["success"], challenge
        token = challenge["result"]["token"]
        answer = self.call("login", username=username, accessKey=proof(token, access_key))
        if answer["success"]:
            self.session_name = answer["result"]["sessionName"]
        return answer

    def authed(self, operation: str, method: str = "POST", **params: Any) -> dict:
        return self.call(operation, method, sessionName=self.session_name, **params)


def proof(token: str, access_key: str) -> str:
    return hashlib.md5((token + access_key).encode()).hexdigest()

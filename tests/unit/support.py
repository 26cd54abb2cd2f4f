"""Helpers for the unit tests: envelope checks, logins, Redis snapshots and test-only operations."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from marshmallow import INCLUDE

from webservice.api.params import Boolean, DateTime, Double, Encoded, Params, String
from webservice.api.registry import operation

ENDPOINT = "/webservice.php"


def proof(token: str, access_key: str) -> str:
    """The coreBOS login proof, written out independently of the product's own helper."""
    return hashlib.md5((token + access_key).encode("utf-8")).hexdigest()


def envelope(response: Any) -> dict[str, Any]:
    """The body of a webservice.php answer, after checking the wire contract of protocol.md §3."""
    assert response.status_code == 200, (response.status_code, response.data[:500])
    assert response.mimetype == "application/json", response.headers.get("Content-Type")
    body = json.loads(response.get_data(as_text=True))
    assert isinstance(body, dict), body
    assert type(body.get("success")) is bool, body
    if body["success"]:
        assert list(body) == ["success", "result", "moreinfo"] and body["moreinfo"] is None, body
    else:
        assert list(body) == ["success", "error", "moreinfo"] and body["moreinfo"] is None, body
        assert set(body["error"]) == {"code", "message"}, body
        assert isinstance(body["error"]["code"], str) and body["error"]["code"], body
        assert isinstance(body["error"]["message"], str) and body["error"]["message"], body
        assert "Traceback" not in body["error"]["message"], body
    return body


def result(body: dict[str, Any]) -> Any:
    assert body["success"] is True, body
    return body["result"]


def error(body: dict[str, Any], code: str, message: str | None = None) -> str:
    """Asserts a failure envelope with ``code`` (and exactly ``message`` if given)."""
    assert body["success"] is False, body
    assert body["error"]["code"] == code, body
    if message is not None:
        assert body["error"]["message"] == message, body
    return body["error"]["message"]


def post(client: Any, headers: dict[str, str] | None = None, path: str = ENDPOINT, **params: Any):
    return envelope(client.post(path, data=params, headers=headers or {}))


def get(client: Any, headers: dict[str, str] | None = None, path: str = ENDPOINT, **params: Any):
    return envelope(client.get(path, query_string=params, headers=headers or {}))


def challenge(client: Any, username: str) -> dict[str, Any]:
    return result(get(client, operation="getchallenge", username=username))


def login_body(client: Any, username: str, access_key: str) -> dict[str, Any]:
    token = challenge(client, username)["token"]
    return post(client, operation="login", username=username, accessKey=proof(token, access_key))


def login(client: Any, username: str, access_key: str) -> str:
    """Logs in and answers the session id."""
    return result(login_body(client, username, access_key))["sessionName"]


def listtypes(client: Any, session_id: str | None, headers: dict[str, str] | None = None):
    """A cheap operation that needs a session."""
    params = {} if session_id is None else {"sessionName": session_id}
    return get(client, headers=headers, operation="listtypes", **params)


def alive(client: Any, session_id: str) -> bool:
    body = listtypes(client, session_id)
    if not body["success"]:
        error(body, "AUTHENTICATION_REQUIRED", "Authentication required")
    return body["success"]


#: Keys written on purpose by every attempt, failed ones included: the audit trail, the failed-login
#: counters and the getchallenge rate buckets. "Nothing changed" means nothing else changed.
BOOKKEEPING = re.compile(r"[^:]+:(audit$|login-failures:|rate:)")


def snapshot(redis: Any, *, bookkeeping: bool = False) -> dict[str, Any]:
    """Every key with its type and value (not its TTL): compare two to prove nothing changed.

    The bookkeeping keys (BOOKKEEPING) are left out unless ``bookkeeping`` is set."""
    data: dict[str, Any] = {}
    for key in sorted(redis.scan_iter(count=1000)):
        if not bookkeeping and BOOKKEEPING.match(key):
            continue
        kind = redis.type(key)
        if kind == "string":
            value: Any = redis.get(key)
        elif kind == "hash":
            value = redis.hgetall(key)
        elif kind == "zset":
            value = redis.zrange(key, 0, -1, withscores=True)
        elif kind == "set":
            value = sorted(redis.smembers(key))
        elif kind == "list":
            value = redis.lrange(key, 0, -1)
        elif kind == "stream":
            value = redis.xrange(key)
        else:  # pragma: no cover - the gateway writes none of the other types
            value = repr(kind)
        data[key] = (kind, value)
    return data


def all_text(redis: Any) -> str:
    """Every key, field, member and value in Redis, as one string to search in."""
    return json.dumps(snapshot(redis, bookkeeping=True), ensure_ascii=False)


# --- Operations that only the tests register -----------------------------------------------------


class _AnyParams(Params):
    class Meta:
        unknown = INCLUDE


@operation("probe", params=_AnyParams, method="GET", needs_session=False)
def probe(context: Any, params: dict[str, Any]) -> dict[str, Any]:
    """Answers the parameters and session id exactly as the endpoint parsed them."""
    return {"params": params, "sessionId": context.session_id}


class TypedParams(Params):
    text = String(required=True)
    payload = Encoded()
    flag = Boolean()
    amount = Double()
    when = DateTime()


@operation("typed", params=TypedParams, needs_session=False)
def typed(context: Any, params: dict[str, Any]) -> dict[str, Any]:
    """Answers its typed parameters, with the Python type of each."""
    return {
        name: {"value": value.isoformat() if hasattr(value, "isoformat") else value,
               "type": type(value).__name__}
        for name, value in params.items()
    }


@operation("boom", needs_session=False)
def boom(context: Any, params: dict[str, Any]) -> None:
    """Fails with an unexpected exception."""
    raise RuntimeError("secret internal detail 5f0e")


TEST_OPERATIONS = (probe, typed, boom)

"""WSGATE_WIRE_PROFILE: the coreBOS answers (the default) or vtiger's for a refused session, and
an OpenAPI description that follows the profile."""

from __future__ import annotations

import time

import pytest

from tests.unit.conftest import gateway_of
from tests.unit.support import error, get, login, post
from webservice.store.tokens import hash_secret

VTIGER = {"WIRE_PROFILE": "vtiger"}


def now_ms() -> int:
    return int(time.time() * 1000)


@pytest.fixture
def vtiger(make_app):
    app = make_app(VTIGER)
    return app, gateway_of(app).users.add("alice")


def family_key(app, session_name: str) -> str:
    return gateway_of(app).keys.family(session_name.partition(".")[0])


def test_corebos_answers_every_refusal_alike(make_app):
    app = make_app()
    client = app.test_client()
    alice = gateway_of(app).users.add("alice")
    session = login(client, "alice", alice.access_key)
    gateway_of(app).redis.hset(family_key(app, session), "x", now_ms() - 1)
    for name in (session, session, "x" * 22 + "." + "y" * 43, "garbage", None):
        params = {"operation": "listtypes"} | ({"sessionName": name} if name else {})
        error(get(client, **params), "AUTHENTICATION_REQUIRED", "Authentication required")


def test_vtiger_tells_missing_unknown_expired_and_idle_apart(vtiger):
    app, alice = vtiger
    client = app.test_client()
    redis = gateway_of(app).redis
    error(get(client, operation="listtypes"), "AUTHENTICATION_REQUIRED", "Authencation required")
    error(
        get(client, operation="listtypes", sessionName="garbage"),
        "INVALID_SESSIONID",
        "Session Identifier provided is Invalid",
    )
    expired = login(client, "alice", alice.access_key)
    redis.hset(family_key(app, expired), "x", now_ms() - 1)
    error(
        get(client, operation="listtypes", sessionName=expired),
        "SESSION_EXPIRED",
        "Session has life span over please login again",
    )
    # Found expired once, it is ended: from then on it is unknown.
    error(get(client, operation="listtypes", sessionName=expired), "INVALID_SESSIONID",
          "Session Identifier provided is Invalid")  # fmt: skip
    idle = login(client, "alice", alice.access_key)
    member = idle.partition(".")[2]
    idle_ms = gateway_of(app).settings["SESSION_IDLE_TIMEOUT"] * 1000
    redis.hset(family_key(app, idle), f"l:{hash_secret(member)}", now_ms() - idle_ms - 1000)
    error(
        post(client, operation="logout", sessionName=idle),
        "SESSION_LEFT_IDLE",
        "Session has been invalidated to due lack activity",
    )


def test_the_openapi_document_follows_the_profile(make_app):
    for settings, present in (({}, False), (VTIGER, True)):
        document = make_app(settings).test_client().get("/openapi.json").get_json()
        codes = [entry["const"] for entry in document["components"]["schemas"]["ErrorCode"]["oneOf"]]
        assert ("INVALID_SESSIONID" in codes) is present
        assert ("SESSION_LEFT_IDLE" in codes) is present


def test_an_unknown_profile_stops_the_app(make_app):
    with pytest.raises(ValueError, match="WIRE_PROFILE"):
        make_app({"WIRE_PROFILE": "sugarcrm"})

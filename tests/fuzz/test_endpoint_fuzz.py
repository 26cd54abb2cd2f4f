"""webservice.php under arbitrary input: always HTTP 200, application/json and a well-formed
envelope with a known code; never a traceback in the log; and Redis changes only as the operation
that ran, and its outcome, allow."""

from __future__ import annotations

import json

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tests.fuzz.conftest import report
from tests.fuzz.strategies import FuzzRequest, endpoint_requests
from tests.fuzz.world import (
    COOKIE,
    FAMILY,
    Live,
    World,
    assert_clean_logs,
    diff,
    snapshot,
    unexplained,
)
from webservice.api.openapi import error_codes
from webservice.auth.web_login import SESSION_KEY as WEB_LOGIN_KEY
from webservice.store.tokens import SessionId, hash_secret

KNOWN_CODES = set(error_codes())


@pytest.fixture(scope="module", params=[False, True], ids=["coreBOS-answers", "hidden-users"])
def world(request):
    world = World({"HIDE_UNKNOWN_USERS": request.param})
    with world.capturing_logs():
        yield world


def check_envelope(response, method: str) -> dict | None:
    assert response.status_code == 200, (response.status_code, response.get_data()[:300])
    assert response.mimetype == "application/json", response.headers.get("Content-Type")
    if method == "HEAD":
        assert response.get_data() == b""
        return None
    body = json.loads(response.get_data(as_text=True))
    assert isinstance(body, dict), body
    assert type(body.get("success")) is bool, body
    if body["success"]:
        assert set(body) == {"success", "result", "moreinfo"}, body
    else:
        assert set(body) == {"success", "error", "moreinfo"}, body
        error = body["error"]
        assert isinstance(error, dict) and set(error) == {"code", "message"}, body
        assert error["code"] in KNOWN_CODES, body
        assert isinstance(error["message"], str) and error["message"], body
        assert error["code"] != "INTERNAL_SERVER_ERROR", body
    return body


def run_case(world: World, request: FuzzRequest, reset_limits: bool) -> None:
    counts = report("webservice.php fuzz")
    world.refresh(reset_limits)
    resolved = world.resolve(request)
    secrets = world.secrets()
    world.recorder.ran.clear()
    world.logs.take()
    before = snapshot(world.raw_redis)
    response = resolved.call(world.client)
    records = world.logs.take()
    after = snapshot(world.raw_redis)

    body = check_envelope(response, resolved.method)
    assert_clean_logs(records)
    success = bool(body and body["success"])
    if body is not None and not success:
        message = body["error"]["message"]
        assert not any(secret in message for secret in secrets), message
    ran = list(world.recorder.ran)
    changes = diff(before, after)
    if ran == ["extendsession"]:
        # A web cookie whose login has ended loses the login from its session data: the record
        # goes, or, when it holds something else too (a CSRF token an earlier request made), is
        # written back without it.
        for name, value in resolved.cookies:
            if name == COOKIE:
                record = f"wsgate:web:{hash_secret(str(value))}"
                changes.removed.pop(record, None)
                if record in changes.changed and WEB_LOGIN_KEY not in str(changes.changed[record][1]):
                    changes.changed.pop(record)
    problems = unexplained(changes, ran, success)
    if body is None and problems:
        # HEAD answers no body: the operation may have succeeded or failed.
        problems = unexplained(changes, ran, True)
    assert not problems, "unexplained changes in Redis after " + (ran[0] if ran else "no handler") \
        + (" (success)" if success else " (failure)") + ":\n" + "\n".join(problems)
    if success and ran == ["login"]:
        # The new family is the one the answer names, and nothing else was started.
        family = SessionId.parse(body["result"]["sessionName"]).family_id
        assert [key for key in changes.added if FAMILY.match(key)] == [f"wsgate:{{{family}}}:f"]
    if ran and ran[0] in ("getchallenge", "listtypes", "listsessions") and not success:
        assert not [key for key in changes.keys() if FAMILY.match(key)
                    and key not in changes.changed], changes.describe()

    counts["cases"] += 1
    if body is None:
        counts["HEAD"] += 1
    elif success:
        counts[f"ok {ran[0] if ran else '?'}"] += 1
    else:
        counts[body["error"]["code"]] += 1
    if changes:
        counts["changed Redis"] += 1


@given(request=endpoint_requests(), reset_limits=st.booleans())
@example(
    request=FuzzRequest("GET", "/webservice.php", query=[("operation", "getchallenge"),
                                                          ("username", "alice")]),
    reset_limits=True,
)
@example(
    request=FuzzRequest("POST", "/webservice.php", body_kind="form", body=[
        ("operation", "login"), ("username", "alice"), ("accessKey", Live("proof"))],
        content_type="application/x-www-form-urlencoded"),
    reset_limits=True,
)
@example(
    request=FuzzRequest("POST", "/webservice", body_kind="json", body={
        "operation": "logout", "sessionName": Live("api", 1)}, content_type="application/json"),
    reset_limits=False,
)
@example(
    request=FuzzRequest("POST", "/webservice.php", body_kind="form", body=[
        ("operation", "extendsession")], headers=[("X-CSRFToken", Live("csrf"))],
        cookies=[("wsgate_session", Live("cookie"))],
        content_type="application/x-www-form-urlencoded"),
    reset_limits=False,
)
@example(
    request=FuzzRequest("GET", "/webservice.php", query=[("operation", "endsession"),
                                                          ("handle", Live("handle", 2))],
                        headers=[("corebos-authorization", Live("api"))]),
    reset_limits=False,
)
@example(
    request=FuzzRequest("POST", "/webservice.php", query=[("operation", "endallsessions"),
                                                           ("sessionName", Live("api", 2))]),
    reset_limits=False,
)
@example(
    request=FuzzRequest("POST", "/webservice.php", body_kind="json", body={
        "operation": "login", "username": "alice", "accessKey": Live("broken-proof")},
        content_type="application/json"),
    reset_limits=True,
)
@example(
    request=FuzzRequest("POST", "/webservice.php", body_kind="form", body=[
        ("operation", "login"), ("username", "alice"), ("accessKey", Live("broken-proof"))],
        content_type="application/x-www-form-urlencoded"),
    reset_limits=True,
)
def test_endpoint_answers_every_request_with_the_envelope(world, request, reset_limits):
    run_case(world, request, reset_limits)

"""Bad input over real HTTP: every answer is still HTTP 200, application/json and the envelope
(wire.send checks that on each call), with the error code clients can act on."""

from __future__ import annotations

import json

import pytest
import requests

from tests.e2e.wire import add_user, code, proof, send

pytestmark = pytest.mark.e2e

MIB = 1024 * 1024
#: A well-formed but unknown session id (family id . secret, URL-safe base64).
UNKNOWN_SESSION = "A" * 22 + "." + "B" * 43
GARBAGE_SESSIONS = {
    "newline": "abc\ndef",
    "CRLF": "abc\r\nSet-Cookie: x=1",
    "star": "*",
    "braces": "{}",
    "hash tag": "wsgate:{x}:f",
    "NUL": "a\x00b",
    "non-ASCII": "sesión-☃",
    "4 KB": "x" * 4096,
    "4 KB, shaped": ("A" * 22 + ".") * 180,
    "well-formed, unknown": UNKNOWN_SESSION,
    "well-formed, bad character": "A" * 21 + "*." + "B" * 43,
}
#: The subset that a client can put in an HTTP header.
HEADER_SAFE = {
    name: value
    for name, value in GARBAGE_SESSIONS.items()
    if value.isascii() and not any(c in value for c in "\r\n\x00")
}


@pytest.fixture(scope="module")
def base(live_gateway) -> str:
    return live_gateway.base_url


def test_unknown_or_missing_operation(base):
    for answer in (
        send(base, "GET", "?operation=nosuchoperation"),
        send(base, "POST", data={"operation": "nosuchoperation"}),
        send(base, "POST", json={"operation": "nosuchoperation"}),
        send(base, "GET", "?operation="),
        send(base, "GET"),
        send(base, "POST"),
        send(base, "GET", "?operation=%ff%fe%00"),
        send(base, "POST", json={"operation": ["login"]}),
        send(base, "POST", json={"operation": 5}),
        # Checked before any session check.
        send(base, "GET", "?operation=nosuchoperation&sessionName=*"),
        send(base, "POST", data={"operation": "nosuch"}, headers={"corebos-authorization": "*"}),
    ):
        assert answer == {
            "success": False,
            "error": {"code": "UNKNOWN_OPERATION", "message": "Unknown operation requested"},
            "moreinfo": None,
        }


@pytest.mark.parametrize("name", sorted(GARBAGE_SESSIONS))
def test_garbage_session_id_in_a_form_or_json(base, name):
    garbage = GARBAGE_SESSIONS[name]
    for operation in ("listtypes", "logout"):
        for request in (
            dict(data={"operation": operation, "sessionName": garbage}),
            dict(json={"operation": operation, "sessionName": garbage}),
            dict(files={"operation": (None, operation), "sessionName": (None, garbage)}),
        ):
            answer = send(base, "POST", **request)
            assert code(answer) == "AUTHENTICATION_REQUIRED", (operation, request, answer)


@pytest.mark.parametrize("name", sorted(HEADER_SAFE))
def test_garbage_session_id_in_the_header(base, name):
    for operation in ("listtypes", "logout"):
        answer = send(
            base,
            "POST",
            data={"operation": operation},
            headers={"corebos-authorization": HEADER_SAFE[name]},
        )
        assert code(answer) == "AUTHENTICATION_REQUIRED", (operation, answer)


def test_short_garbage_session_ids_in_the_query_string(base):
    for name, garbage in GARBAGE_SESSIONS.items():
        if len(garbage) > 100:
            continue
        answer = send(base, "GET", "?operation=listtypes", params={"sessionName": garbage})
        assert code(answer) == "AUTHENTICATION_REQUIRED", (name, answer)


def test_a_4kb_session_id_in_the_query_string_gets_the_envelope(base):
    """GET and POST are interchangeable (protocol.md §1): a 4 KB parameter in the query string
    must reach the gateway and be answered with the envelope, not refused by the HTTP server."""
    answer = send(base, "GET", "?operation=listtypes", params={"sessionName": "x" * 4096})
    assert code(answer) == "AUTHENTICATION_REQUIRED", answer


def test_a_body_over_the_limit(base):
    too_big = "a" * (MIB + 10)
    for request in (
        dict(data={"operation": "getchallenge", "username": "nobody", "pad": too_big}),
        dict(json={"operation": "getchallenge", "username": "nobody", "pad": too_big}),
        dict(data=too_big.encode(), headers={"Content-Type": "application/octet-stream"}),
        dict(data=too_big.encode()),
        dict(
            files={"operation": (None, "getchallenge"), "blob": ("blob.bin", too_big.encode())}
        ),
        dict(data=b"x" * (4 * MIB), headers={"Content-Type": "application/x-www-form-urlencoded"}),
    ):
        answer = send(base, "POST", "?operation=getchallenge&username=nobody", **request)
        assert code(answer) == "REQUEST_TOO_LARGE", answer
    # Just under the limit is fine.
    fits = send(
        base, "POST", data={"operation": "getchallenge", "username": "nobody", "pad": "a" * 1000}
    )
    assert code(fits) == "AUTHENTICATION_REQUIRED"


def test_too_many_parameters(base):
    many = {"operation": "listtypes", **{f"p{i}": "1" for i in range(300)}}
    assert code(send(base, "POST", data=many)) == "REQUEST_TOO_LARGE"


@pytest.mark.parametrize(
    "body",
    [
        b'{"operation": ',
        b'{"operation": "listtypes",}',
        b"[1, 2]",
        b'"listtypes"',
        b"null",
        b"42",
        b"\xff\xfe\x00",
        b"operation=listtypes",  # a form, but labelled as JSON
    ],
)
def test_malformed_json_body(base, body):
    answer = send(base, "POST", data=body, headers={"Content-Type": "application/json"})
    assert code(answer) == "INVALID_PARAMETER", answer


def test_json_values_of_the_wrong_type(base):
    for username in (5, {"a": 1}, ["alice"], True):
        answer = send(base, "POST", json={"operation": "getchallenge", "username": username})
        assert code(answer) == "INVALID_PARAMETER", (username, answer)
        assert "username" in answer["error"]["message"]
    answer = send(base, "POST", json={"operation": "listtypes", "sessionName": {"a": 1}})
    assert code(answer) == "AUTHENTICATION_REQUIRED", answer


def test_missing_parameters(base):
    answer = send(base, "GET", "?operation=getchallenge")
    assert code(answer) == "MANDATORY_FIELDS_MISSING", answer
    assert "username" in answer["error"]["message"]
    answer = send(base, "POST", data={"operation": "login", "username": "nobody"})
    assert code(answer) == "MANDATORY_FIELDS_MISSING", answer
    assert "accessKey" in answer["error"]["message"]
    answer = send(base, "POST", data={"operation": "login", "username": "", "accessKey": "x"})
    assert code(answer) == "MANDATORY_FIELDS_MISSING", answer


@pytest.mark.parametrize("method", ["PATCH", "PUT", "DELETE", "OPTIONS", "FOO", "TRACE"])
def test_odd_methods(base, method):
    for query in ("", "?operation=listtypes", "?operation=getchallenge&username=nobody"):
        answer = send(base, method, query)
        assert answer["success"] is False, answer


def test_head_is_answered_as_json(live_gateway):
    response = requests.head(live_gateway.base_url + "/webservice.php?operation=listtypes")
    assert response.status_code == 200
    assert response.headers["Content-Type"].split(";")[0] == "application/json"


def test_the_gateway_still_serves_after_all_that(live_gateway, base):
    access_key = add_user(live_gateway, "survivor")
    token = send(base, "GET", "?operation=getchallenge&username=survivor")["result"]["token"]
    login = send(
        base,
        "POST",
        data=json.dumps(
            {"operation": "login", "username": "survivor", "accessKey": proof(token, access_key)}
        ),
        headers={"Content-Type": "application/json"},
    )
    assert login["success"], login
    session = login["result"]["sessionName"]
    assert send(base, "POST", data={"operation": "listtypes", "sessionName": session})["success"]
    assert send(base, "POST", data={"operation": "logout", "sessionName": session})["success"]

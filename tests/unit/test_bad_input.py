"""Bad input gets an error envelope with HTTP 200, never a 5xx or a traceback, and changes nothing."""

from __future__ import annotations

import io
import json

import pytest

from tests.unit.conftest import gateway_of
from tests.unit.support import TEST_OPERATIONS, envelope, error, login, result, snapshot

LIMIT = 2000
TOO_LARGE = "REQUEST_TOO_LARGE"


@pytest.fixture
def small_app(make_app):
    """A tight body limit, a few parameters at most, user alice with a live session."""
    app = make_app({"MAX_CONTENT_LENGTH": LIMIT, "MAX_FORM_PARTS": 20}, extra_operations=TEST_OPERATIONS)
    alice = gateway_of(app).users.add("alice")
    app.config["test_session"] = login(app.test_client(), "alice", alice.access_key)
    return app


@pytest.fixture
def small(small_app):
    return small_app.test_client()


@pytest.fixture
def small_redis(small_app):
    return gateway_of(small_app).redis


def unchanged_after(redis, send):
    """Sends one request; answers its envelope after checking that Redis did not change."""
    before = snapshot(redis)
    response = send()
    body = envelope(response)
    assert snapshot(redis) == before
    return body


# --- Oversized bodies -------------------------------------------------------------------------


def _oversized(kind: str):
    filler = "x" * (LIMIT + 100)
    if kind == "urlencoded":
        return {"data": f"operation=getchallenge&username=alice&pad={filler}",
                "content_type": "application/x-www-form-urlencoded"}
    if kind == "urlencoded-charset":
        return {"data": f"operation=getchallenge&username=alice&pad={filler}",
                "content_type": "application/x-www-form-urlencoded; charset=UTF-8"}
    if kind == "multipart":
        return {"data": {"operation": "getchallenge", "username": "alice", "pad": filler},
                "content_type": "multipart/form-data"}
    if kind == "multipart-file":
        return {"data": {"operation": "getchallenge", "username": "alice",
                         "f": (io.BytesIO(filler.encode()), "f.bin")},
                "content_type": "multipart/form-data"}
    if kind == "json":
        return {"data": json.dumps({"operation": "getchallenge", "username": "alice", "pad": filler}),
                "content_type": "application/json"}
    if kind == "text":
        return {"data": filler, "content_type": "text/plain"}
    return {"data": filler.encode(), "content_type": "application/octet-stream"}


KINDS = ["urlencoded", "urlencoded-charset", "multipart", "multipart-file", "json", "text", "octet"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("query", ["", "operation=getchallenge&username=alice"])
@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_oversized_body(small, small_redis, kind, query, method):
    path = "/webservice.php" + (f"?{query}" if query else "")
    body = unchanged_after(small_redis, lambda: small.open(path, method=method, **_oversized(kind)))
    message = error(body, TOO_LARGE)
    assert str(LIMIT) in message


def test_body_at_the_limit_is_accepted(small):
    data = "operation=getchallenge&username=alice&pad="
    data += "x" * (LIMIT - len(data))
    assert len(data) == LIMIT
    response = small.post("/webservice.php", data=data, content_type="application/x-www-form-urlencoded")
    assert result(envelope(response))["token"]


# --- Too many parameters --------------------------------------------------------------------


def _many(count: int) -> dict[str, str]:
    return {f"p{i}": "1" for i in range(count)}


@pytest.mark.parametrize("where", ["query", "form", "multipart", "json", "split"])
def test_too_many_parameters(small, small_redis, where):
    params = {"operation": "getchallenge", "username": "alice", **_many(19)}  # 21 in all
    if where == "query":
        send = lambda: small.get("/webservice.php", query_string=params)  # noqa: E731
    elif where == "form":
        send = lambda: small.post("/webservice.php", data=params)  # noqa: E731
    elif where == "multipart":
        send = lambda: small.post("/webservice.php", data=params, content_type="multipart/form-data")  # noqa: E731
    elif where == "json":
        send = lambda: small.post("/webservice.php", json=params)  # noqa: E731
    else:
        query = dict(list(params.items())[:11])
        form = dict(list(params.items())[11:])
        send = lambda: small.post("/webservice.php", query_string=query, data=form)  # noqa: E731
    error(unchanged_after(small_redis, send), TOO_LARGE)


def test_parameter_count_limit_is_inclusive(small):
    params = {"operation": "probe", **_many(19)}  # 20 in all: allowed
    assert result(envelope(small.get("/webservice.php", query_string=params)))["params"] == _many(19)


# --- Bodies that are neither a form nor a JSON object --------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"{",
        b'{"operation": "getchallenge", "username": "alice"',
        b"{'operation': 'getchallenge'}",
        b'{"operation": getchallenge}',
        b"nul",
        b"\xff\xfe\x00{",
        b'{"operation": "getchallenge", "username": "\xff"}',
        b"[]",
        b'["getchallenge", "alice"]',
        b'[{"operation": "getchallenge", "username": "alice"}]',
        b"42",
        b"-1.5e300",
        b'"getchallenge"',
        b"null",
        b"true",
        b"NaN",
    ],
)
@pytest.mark.parametrize("content_type", ["application/json", "text/plain", None])
def test_malformed_or_non_object_json(small, small_redis, raw, content_type):
    body = unchanged_after(
        small_redis, lambda: small.post("/webservice.php", data=raw, content_type=content_type)
    )
    error(body, "INVALID_PARAMETER")


@pytest.mark.parametrize(
    ("raw", "content_type"),
    [
        (b"operation=getchallenge&username=alice", "text/plain"),
        (b"<operation>getchallenge</operation><username>alice</username>", "application/xml"),
        (b"<?xml version='1.0'?><r operation='getchallenge'/>", "text/xml"),
        (b"operation: getchallenge", "application/yaml"),
        (b"\x00\x01\x02\x03", "application/octet-stream"),
        (b"operation=getchallenge&username=alice", "image/png"),
    ],
)
def test_wrong_content_types(small, small_redis, raw, content_type):
    body = unchanged_after(
        small_redis, lambda: small.post("/webservice.php", data=raw, content_type=content_type)
    )
    error(body, "INVALID_PARAMETER")


@pytest.mark.parametrize(
    ("raw", "content_type"),
    [
        (b"garbage without parts", "multipart/form-data; boundary=xyz"),
        (b"--xyz\r\nContent-Disposition: form-data; name=\"operation\"\r\n\r\ngetchallenge", "multipart/form-data; boundary=xyz"),
        (b"operation=getchallenge", "multipart/form-data"),
        (b"--\r\n\r\n", "multipart/form-data; boundary="),
    ],
)
def test_broken_multipart(small, small_redis, raw, content_type):
    body = unchanged_after(
        small_redis, lambda: small.post("/webservice.php", data=raw, content_type=content_type)
    )
    assert body["success"] is False


@pytest.mark.parametrize(
    "query",
    [
        "operation=getchallenge%00&username=alice",
        "operation=%ff%fe&username=alice",
        "operation=%zz&username=alice",
        "operation[]=getchallenge&username=alice",
        "operation=get%20challenge&username=alice",
        "operation=getchallenge;username=alice",
    ],
)
def test_mangled_operation_names(small, small_redis, query):
    body = unchanged_after(small_redis, lambda: small.get(f"/webservice.php?{query}"))
    error(body, "UNKNOWN_OPERATION", "Unknown operation requested")


@pytest.mark.parametrize("username", ["alice\x00", "alice\n", "al%ice", "\u202ealice", "alice" * 20, "ålice"])
def test_mangled_usernames(small, small_redis, username):
    body = unchanged_after(
        small_redis,
        lambda: small.post("/webservice.php", data={"operation": "getchallenge", "username": username}),
    )
    error(body, "AUTHENTICATION_REQUIRED", "Given user cannot be found")


# --- Odd HTTP methods --------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["FOO", "PROPFIND", "TRACE", "CONNECT"])
@pytest.mark.parametrize("path", ["/webservice.php", "/webservice"])
def test_odd_methods_get_the_envelope(small, small_redis, method, path):
    body = unchanged_after(
        small_redis,
        lambda: small.open(f"{path}?operation=getchallenge&username=alice", method=method),
    )
    assert body["success"] is False


@pytest.mark.parametrize("path", ["/webservice.php", "/webservice"])
def test_options_gets_the_envelope(small, small_redis, path):
    """protocol.md §3: every answer of the endpoint is 200 + application/json + the envelope.

    OPTIONS is no exception (Flask's automatic OPTIONS answer is an empty text/html body).
    """
    body = unchanged_after(
        small_redis,
        lambda: small.open(f"{path}?operation=getchallenge&username=alice", method="OPTIONS"),
    )
    assert body["success"] is False


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_other_standard_methods_get_the_envelope(small_app, small, small_redis, method):
    body = unchanged_after(
        small_redis, lambda: small.open("/webservice.php?operation=listtypes", method=method)
    )
    error(body, "AUTHENTICATION_REQUIRED", "Authentication required")
    body = unchanged_after(
        small_redis, lambda: small.open("/webservice.php?operation=nosuch", method=method, data={"a": "1"})
    )
    error(body, "UNKNOWN_OPERATION", "Unknown operation requested")


def test_head_answers_like_get_without_a_body(small):
    response = small.open("/webservice.php?operation=nosuch", method="HEAD")
    assert response.status_code == 200
    assert response.mimetype == "application/json"


# --- Operation and parameter errors ------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [{}, {"operation": ""}, {"operation": "nosuchop"}, {"operation": " "}, {"sessionName": "x"}],
)
@pytest.mark.parametrize("session", ["none", "garbage", "live"])
def test_unknown_operation_comes_before_any_session_check(small_app, small, small_redis, params, session):
    headers = {}
    if session == "garbage":
        headers["corebos-authorization"] = "garbage"
    elif session == "live":
        headers["corebos-authorization"] = small_app.config["test_session"]
    body = unchanged_after(small_redis, lambda: small.post("/webservice.php", data=params, headers=headers))
    error(body, "UNKNOWN_OPERATION", "Unknown operation requested")


@pytest.mark.parametrize("operation", ["listtypes", "logout"])
@pytest.mark.parametrize("session", [None, "", "null", "garbage", "dead"])
def test_session_operations_need_a_live_session(small_app, small, small_redis, operation, session):
    if session == "dead":
        alice = gateway_of(small_app).users.get("alice")
        session = login(small, "alice", alice.access_key)
        result(envelope(small.post("/webservice.php", data={"operation": "logout", "sessionName": session})))
    params = {"operation": operation}
    if session is not None:
        params["sessionName"] = session
    body = unchanged_after(small_redis, lambda: small.post("/webservice.php", data=params))
    error(body, "AUTHENTICATION_REQUIRED", "Authentication required")


def test_session_is_checked_before_parameters(make_app):
    """An operation that needs a session answers AUTHENTICATION_REQUIRED, not a parameter error."""
    from webservice.api.params import Params, String
    from webservice.api.registry import operation

    class Needs(Params):
        must = String(required=True)

    @operation("needsboth", params=Needs)
    def needsboth(context, params):
        """Needs a session and a parameter."""
        return params

    client = make_app(extra_operations=(needsboth,)).test_client()
    body = envelope(client.post("/webservice.php", data={"operation": "needsboth"}))
    error(body, "AUTHENTICATION_REQUIRED", "Authentication required")


def test_username_with_invalid_utf8_bytes(small, small_redis):
    body = unchanged_after(
        small_redis,
        lambda: small.post(
            "/webservice.php",
            data=b"operation=getchallenge&username=al%ff%feice",
            content_type="application/x-www-form-urlencoded",
        ),
    )
    error(body, "AUTHENTICATION_REQUIRED", "Given user cannot be found")


@pytest.mark.parametrize(
    ("query", "code", "message"),
    [
        ("operation=getchallenge&username=al\xff\xfeice", "AUTHENTICATION_REQUIRED",
         "Given user cannot be found"),
        ("operation=get\xffchallenge&username=alice", "UNKNOWN_OPERATION",
         "Unknown operation requested"),
        ("operation=listtypes&sessionName=\xc3", "AUTHENTICATION_REQUIRED",
         "Authentication required"),
    ],
)
def test_raw_bytes_that_are_not_utf8_in_the_query_string(small, small_redis, query, code, message):
    """The WSGI environ's query string as a server that passes raw bytes on gives it (latin-1
    text): its bytes are read as in a form body, not a traceback and INTERNAL_SERVER_ERROR
    (Werkzeug's ``request.args`` raised). gunicorn refuses such a request line, and Werkzeug's
    own server re-encodes it, so over HTTP only another WSGI server sends it."""
    body = unchanged_after(
        small_redis,
        lambda: small.get("/webservice.php", environ_overrides={"QUERY_STRING": query}),
    )
    error(body, code, message)


# --- JSON bodies with values of the wrong type or shape -------------------------------------------


@pytest.mark.parametrize(
    ("document", "code", "named"),
    [
        ({"operation": 5, "username": "alice"}, "UNKNOWN_OPERATION", None),
        ({"operation": ["getchallenge"], "username": "alice"}, "UNKNOWN_OPERATION", None),
        ({"operation": {"name": "getchallenge"}}, "UNKNOWN_OPERATION", None),
        ({"operation": True}, "UNKNOWN_OPERATION", None),
        ({"operation": "getchallenge", "username": ["alice"]}, "INVALID_PARAMETER", "username"),
        ({"operation": "getchallenge", "username": {"$ne": ""}}, "INVALID_PARAMETER", "username"),
        ({"operation": "getchallenge", "username": 1}, "INVALID_PARAMETER", "username"),
        ({"operation": "login", "username": "alice", "accessKey": 5}, "INVALID_PARAMETER", "accessKey"),
        ({"operation": "login", "username": "alice", "accessKey": ["a"]}, "INVALID_PARAMETER", "accessKey"),
        ({"operation": "listtypes", "sessionName": ["x"]}, "AUTHENTICATION_REQUIRED", None),
        ({"operation": "listtypes", "sessionName": {"a": 1}}, "AUTHENTICATION_REQUIRED", None),
        ({"operation": "listtypes", "sessionName": 12345}, "AUTHENTICATION_REQUIRED", None),
        ({"operation": "listtypes", "sessionName": False}, "AUTHENTICATION_REQUIRED", None),
    ],
)
def test_json_values_of_the_wrong_type(small, small_redis, document, code, named):
    body = unchanged_after(small_redis, lambda: small.post("/webservice.php", json=document))
    message = error(body, code)
    if named:
        assert named in message


@pytest.mark.parametrize(
    "raw",
    [
        "[" * 50_000,
        "{" + '"a":{' * 30_000,
        '{"operation": "getchallenge", "username": "alice", "deep": ' + "[" * 50_000 + "]" * 50_000 + "}",
    ],
)
def test_deeply_nested_json_is_invalid_not_an_internal_error(make_app, raw):
    """Bad input gets its own error code (protocol.md §3): INTERNAL_SERVER_ERROR is for bugs."""
    app = make_app()
    redis = gateway_of(app).redis
    gateway_of(app).users.add("alice")
    body = unchanged_after(
        redis, lambda: app.test_client().post("/webservice.php", data=raw, content_type="application/json")
    )
    error(body, "INVALID_PARAMETER")

"""The wire contract of protocol.md §1-3: one endpoint, how parameters and the session id are read."""

from __future__ import annotations

import io
import json

import pytest

from tests.unit.support import (
    envelope,
    error,
    get,
    listtypes,
    login,
    post,
    proof,
    result,
)
from webservice.api.request_parsing import parse_request

PATHS = ["/webservice.php", "/webservice"]


def probe(client, method="GET", query="", **kwargs):
    """Calls the probe operation; answers (params, sessionId) as the endpoint parsed them."""
    path = "/webservice.php" + (f"?{query}" if query else "")
    body = envelope(client.open(path, method=method, **kwargs))
    answer = result(body)
    return answer["params"], answer["sessionId"]


# --- One endpoint, GET and POST alike --------------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_both_paths_and_methods_serve_the_whole_flow(client, alice, path, method):
    def call(**params):
        if method == "GET":
            return get(client, path=path, **params)
        return post(client, path=path, **params)

    token = result(call(operation="getchallenge", username="alice"))["token"]
    session = result(call(operation="login", username="alice", accessKey=proof(token, alice.access_key)))
    session_id = session["sessionName"]
    assert result(call(operation="listtypes", sessionName=session_id))["types"] == ["Users"]
    assert result(call(operation="logout", sessionName=session_id)) == {"message": "successfull"}


@pytest.mark.parametrize("name", ["listTypes", "LISTTYPES", "ListTypes", "listtypes"])
def test_operation_name_is_case_insensitive(client, alice, name):
    session_id = login(client, "alice", alice.access_key)
    assert result(get(client, operation=name, sessionName=session_id))["types"] == ["Users"]


@pytest.mark.parametrize("name", ["GetChallenge", "GETCHALLENGE", "getChallenge"])
def test_prelogin_operation_name_is_case_insensitive(client, alice, name):
    assert result(post(client, operation=name, username="alice"))["token"]


def test_operation_in_query_with_parameters_in_the_form(client, alice):
    body = envelope(client.post("/webservice.php?operation=getchallenge", data={"username": "alice"}))
    assert result(body)["token"]


def test_operation_in_form_with_parameters_in_the_query(client, alice):
    body = envelope(client.post("/webservice.php?username=alice", data={"operation": "getchallenge"}))
    assert result(body)["token"]


def test_getchallenge_posted_with_username_in_query_and_empty_typeless_body(client, alice):
    """One client POSTs getchallenge with an empty body and no Content-Type (protocol.md §4)."""
    response = client.post(
        "/webservice.php?operation=getchallenge&username=alice", data=b"", content_type=None
    )
    assert result(envelope(response))["token"]


# --- Query, form and JSON ----------------------------------------------------------------------------


def test_form_wins_over_query_on_a_clash(probe_client):
    params, _ = probe(
        probe_client,
        "POST",
        query="operation=probe&a=query&q=only-query",
        data={"a": "form", "f": "only-form"},
    )
    assert params == {"a": "form", "q": "only-query", "f": "only-form"}


def test_form_operation_wins_over_query_operation(probe_client):
    params, _ = probe(probe_client, "POST", query="operation=nosuchop", data={"operation": "probe"})
    assert params == {}
    body = envelope(probe_client.post("/webservice.php?operation=probe", data={"operation": "nosuchop"}))
    error(body, "UNKNOWN_OPERATION", "Unknown operation requested")


def test_repeated_parameter_last_value_counts(probe_client):
    params, _ = probe(probe_client, query="operation=probe&a=1&a=2&a=3")
    assert params == {"a": "3"}


@pytest.mark.parametrize(
    "query",
    ["&operation=probe&a=1", "&&operation=probe&a=1", "operation=probe&&a=1&", "&operation=probe&a=1&"],
)
def test_query_with_stray_ampersands_parses(probe_client, query):
    params, _ = probe(probe_client, query=query)
    assert params == {"a": "1"}


def test_leading_ampersand_getchallenge(client, alice):
    body = envelope(client.get("/webservice.php?&operation=getchallenge&username=alice"))
    assert result(body)["token"]


@pytest.mark.parametrize(
    "content_type",
    [
        "application/x-www-form-urlencoded",
        "application/x-www-form-urlencoded; charset=UTF-8",
        "application/x-www-form-urlencoded;charset=utf-8",
    ],
)
def test_urlencoded_form_with_or_without_charset(probe_client, content_type):
    raw = "operation=PROBE&name=%C3%A9t%C3%A9&plus=a+b&pct=100%25"
    params, _ = probe(probe_client, "POST", data=raw, content_type=content_type)
    assert params == {"name": "été", "plus": "a b", "pct": "100%"}


def test_multipart_form(probe_client):
    params, _ = probe(
        probe_client,
        "POST",
        data={"operation": "probe", "a": "1", "b": "été", "upload": (io.BytesIO(b"xyz"), "f.txt")},
        content_type="multipart/form-data",
    )
    assert params == {"a": "1", "b": "été"}


def test_multipart_login_flow(client, alice):
    token = result(get(client, operation="getchallenge", username="alice"))["token"]
    response = client.post(
        "/webservice.php",
        data={"operation": "login", "username": "alice", "accessKey": proof(token, alice.access_key)},
        content_type="multipart/form-data",
    )
    assert result(envelope(response))["sessionName"]


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8", None])
def test_json_object_body_when_query_and_form_are_empty(probe_client, content_type):
    document = {
        "operation": "probe",
        "nested": {"a": [1, 2, {"b": None}], "c": "d"},
        "number": 3,
        "flag": True,
        "text": "é",
    }
    params, _ = probe(probe_client, "POST", data=json.dumps(document), content_type=content_type)
    assert params == {"nested": {"a": [1, 2, {"b": None}], "c": "d"}, "number": 3, "flag": True, "text": "é"}


def test_json_body_ignored_when_query_has_parameters(probe_client):
    params, _ = probe(
        probe_client, "POST", query="operation=probe", data=json.dumps({"x": 1}), content_type="application/json"
    )
    assert params == {}


def test_json_body_ignored_when_form_has_parameters(probe_client):
    """A form body is a form: the JSON-looking value is just one form field."""
    params, _ = probe(
        probe_client, "POST", data={"operation": "probe", "doc": '{"x": 1}'}
    )
    assert params == {"doc": '{"x": 1}'}


def test_json_body_whole_flow(client, alice):
    def call(**document):
        return envelope(client.post("/webservice.php", json=document))

    token = result(call(operation="getchallenge", username="alice"))["token"]
    session_id = result(call(operation="login", username="alice", accessKey=proof(token, alice.access_key)))[
        "sessionName"
    ]
    assert result(call(operation="listTypes", sessionName=session_id))["types"] == ["Users"]
    assert result(call(operation="logout", sessionName=session_id)) == {"message": "successfull"}
    error(call(operation="listtypes", sessionName=session_id), "AUTHENTICATION_REQUIRED")


def test_json_body_empty_strings_and_nulls_are_missing(probe_client):
    params, session_id = probe(
        probe_client, "POST", json={"operation": "probe", "a": "", "b": None, "c": "x", "sessionName": None}
    )
    assert params == {"c": "x"}
    assert session_id is None


def test_empty_string_parameter_counts_as_missing(probe_client, client, alice):
    params, _ = probe(probe_client, query="operation=probe&a=&b=1")
    assert params == {"b": "1"}
    error(
        post(client, operation="getchallenge", username=""),
        "MANDATORY_FIELDS_MISSING",
    )
    message = error(post(client, operation="login", username="alice", accessKey=""), "MANDATORY_FIELDS_MISSING")
    assert "accessKey" in message


# --- The session id ----------------------------------------------------------------------------------


def test_session_id_from_sessionname(probe_client):
    _, session_id = probe(probe_client, query="operation=probe&sessionName=abc")
    assert session_id == "abc"


@pytest.mark.parametrize("header", ["corebos-authorization", "Corebos-Authorization", "COREBOS-AUTHORIZATION"])
def test_non_empty_header_wins_over_sessionname(probe_client, header):
    _, session_id = probe(
        probe_client, query="operation=probe&sessionName=from-param", headers={header: "from-header"}
    )
    assert session_id == "from-header"


def test_underscore_header_is_accepted(probe_client):
    _, session_id = probe(
        probe_client, query="operation=probe&sessionName=p", headers={"corebos_authorization": "h"}
    )
    assert session_id == "h"


def test_empty_header_is_ignored(probe_client):
    _, session_id = probe(
        probe_client, query="operation=probe&sessionName=from-param", headers={"corebos-authorization": ""}
    )
    assert session_id == "from-param"


@pytest.mark.parametrize("value", ["", "null", "NULL", "Null", "nUlL"])
def test_empty_or_null_sessionname_means_no_session(probe_client, client, value):
    _, session_id = probe(probe_client, query=f"operation=probe&sessionName={value}")
    assert session_id is None
    error(listtypes(client, value), "AUTHENTICATION_REQUIRED", "Authentication required")


def test_real_session_through_the_header(client, alice):
    session_id = login(client, "alice", alice.access_key)
    headers = {"corebos-authorization": session_id}
    assert result(get(client, headers=headers, operation="listtypes"))["types"] == ["Users"]
    # The header wins: a bad sessionName beside a good header is not looked at.
    assert result(get(client, headers=headers, operation="listtypes", sessionName="junk"))
    # The official JS client sends an empty header and the id in sessionName.
    empty = {"corebos-authorization": ""}
    assert result(get(client, headers=empty, operation="listtypes", sessionName=session_id))


def test_bad_header_beats_good_sessionname(client, alice):
    session_id = login(client, "alice", alice.access_key)
    body = get(client, headers={"corebos-authorization": "junk"}, operation="listtypes", sessionName=session_id)
    error(body, "AUTHENTICATION_REQUIRED", "Authentication required")


# --- The envelope --------------------------------------------------------------------------------


def test_success_envelope_is_exact(client, alice):
    response = client.get("/webservice.php", query_string={"operation": "getchallenge", "username": "alice"})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    body = json.loads(response.data)
    assert list(body) == ["success", "result", "moreinfo"]
    assert body["success"] is True
    assert set(body["result"]) == {"token", "serverTime", "expireTime"}


def test_error_envelope_is_exact(client):
    response = client.get("/webservice.php", query_string={"operation": "nope"})
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.data == (
        b'{"success":false,"error":{"message":"Unknown operation requested",'
        b'"code":"UNKNOWN_OPERATION"},"moreinfo":null}'
    ), "coreBOS's exact shape: message before code, and moreinfo"


def test_unexpected_exception_is_internal_server_error_without_details(probe_client, caplog):
    response = probe_client.get("/webservice.php?operation=boom")
    body = envelope(response)
    error(body, "INTERNAL_SERVER_ERROR", "Unknown Error while processing request")
    assert b"5f0e" not in response.data and b"RuntimeError" not in response.data
    assert "5f0e" in caplog.text  # the traceback goes to the log


# --- parse_request itself ----------------------------------------------------------------------------


def test_parse_request_reads_operation_session_and_client(app):
    with app.test_request_context(
        "/webservice.php?operation=ListTypes&x=1",
        method="POST",
        data={"y": "2", "sessionName": "NULL"},
        headers={"User-Agent": "ua/1.0"},
        environ_base={"REMOTE_ADDR": "192.0.2.7"},
    ):
        from flask import request

        parsed = parse_request(request, 200)
    assert parsed.operation == "listtypes"
    assert parsed.session_id is None
    assert parsed.params == {"x": "1", "y": "2"}
    assert parsed.client.address == "192.0.2.7"
    assert parsed.client.user_agent == "ua/1.0"

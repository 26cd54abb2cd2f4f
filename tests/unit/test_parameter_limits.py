"""Request limits: parameter name and value lengths, and malformed session ids and web cookies,
all refused before any Redis call, with the envelope (never a 413 page)."""

from __future__ import annotations

import json

import fakeredis
import pytest

from tests.unit.support import ENDPOINT, TEST_OPERATIONS, envelope, error, login, result

NAME_LIMIT = 16
VALUE_LIMIT = 100


class CountingRedis(fakeredis.FakeRedis):
    """fakeredis that counts every command and pipeline it is asked for."""

    calls = 0

    def execute_command(self, *args, **kwargs):
        CountingRedis.calls += 1
        return super().execute_command(*args, **kwargs)

    def pipeline(self, *args, **kwargs):
        CountingRedis.calls += 1
        return super().pipeline(*args, **kwargs)


@pytest.fixture
def limited_app(make_app):
    server = fakeredis.FakeServer()
    app = make_app(
        {"MAX_PARAMETER_NAME_LENGTH": NAME_LIMIT, "MAX_PARAMETER_LENGTH": VALUE_LIMIT},
        redis=CountingRedis(server=server, decode_responses=True),
        extra_operations=TEST_OPERATIONS,
        use_fake_redis=False,
    )
    # make_app gives a web-session client only with its own fakeredis: set one over this server.
    app.session_interface.client = CountingRedis(server=server)
    return app


@pytest.fixture
def limited(limited_app):
    return limited_app.test_client()


class NoRedis:
    """Asserts that the block made no Redis call."""

    def __enter__(self):
        self.before = CountingRedis.calls
        return self

    def __exit__(self, *exc_info):
        if exc_info[0] is None:
            assert CountingRedis.calls == self.before, "a Redis call was made"


def _send(client, where: str, params: dict):
    if where == "query":
        return client.get(ENDPOINT, query_string=params)
    if where == "form":
        return client.post(ENDPOINT, data=params)
    if where == "multipart":
        return client.post(ENDPOINT, data=params, content_type="multipart/form-data")
    return client.post(ENDPOINT, data=json.dumps(params), content_type="application/json")


WHERE = ["query", "form", "multipart", "json"]


@pytest.mark.parametrize("where", WHERE)
def test_values_up_to_the_limit_are_accepted(limited, where):
    params = {"operation": "probe", "v": "é" * VALUE_LIMIT, "n" * NAME_LIMIT: "x"}
    answer = result(envelope(_send(limited, where, params)))
    assert answer["params"]["v"] == "é" * VALUE_LIMIT
    assert answer["params"]["n" * NAME_LIMIT] == "x"


@pytest.mark.parametrize("operation", ["probe", "listtypes", "nosuchoperation"])
@pytest.mark.parametrize("where", WHERE)
def test_a_value_over_the_limit_is_invalid_before_any_redis_call(limited, where, operation):
    secret = "s3cr3t" + "x" * VALUE_LIMIT
    with NoRedis():
        body = envelope(_send(limited, where, {"operation": operation, "long": secret}))
    message = error(body, "INVALID_PARAMETER")
    assert message == f"Invalid parameter long: longer than {VALUE_LIMIT} characters"
    assert "s3cr3t" not in message


@pytest.mark.parametrize("where", WHERE)
def test_a_name_over_the_limit_is_invalid_before_any_redis_call(limited, where):
    name = "n" * (NAME_LIMIT + 1)
    with NoRedis():
        body = envelope(_send(limited, where, {"operation": "listtypes", name: "x"}))
    message = error(body, "INVALID_PARAMETER")
    assert message == f"Invalid parameter name: longer than {NAME_LIMIT} characters"


def test_an_over_long_operation_name_is_invalid(limited):
    with NoRedis():
        body = envelope(limited.get(ENDPOINT, query_string={"operation": "x" * (VALUE_LIMIT + 1)}))
    error(body, "INVALID_PARAMETER")


def test_nested_json_values_count_by_their_json_text(limited):
    small = {"operation": "typed", "text": "t", "payload": {"a": "x" * 50}}
    assert result(envelope(_send(limited, "json", small)))["payload"]["value"] == {"a": "x" * 50}
    big = {"operation": "typed", "text": "t", "payload": {"a": "x" * VALUE_LIMIT}}
    with NoRedis():
        body = envelope(_send(limited, "json", big))
    assert error(body, "INVALID_PARAMETER") == (
        f"Invalid parameter payload: longer than {VALUE_LIMIT} characters"
    )
    # Numbers, booleans and null have no length to speak of.
    assert result(envelope(_send(limited, "json", {"operation": "probe", "n": 10**50})))


def test_only_the_last_value_of_a_repeated_name_counts(limited):
    body = envelope(limited.get(f"{ENDPOINT}?operation=probe&v={'x' * 200}&v=short"))
    assert result(body)["params"]["v"] == "short"


def test_the_name_in_the_message_is_cut(make_app):
    client = make_app({"MAX_PARAMETER_LENGTH": 5}, extra_operations=TEST_OPERATIONS).test_client()
    name = "p" * 200
    message = error(envelope(client.post(ENDPOINT, data={"operation": "probe", name: "longer"})),
                    "INVALID_PARAMETER")
    assert message == f"Invalid parameter {'p' * 64}…: longer than 5 characters"


def test_defaults(gateway):
    assert gateway.settings["MAX_PARAMETER_LENGTH"] == 64 * 1024
    assert gateway.settings["MAX_PARAMETER_NAME_LENGTH"] == 256


def test_default_limits_apply(client):
    at_limit = {"operation": "nosuch", "v": "x" * 64 * 1024, "n" * 256: "x"}
    error(envelope(client.post(ENDPOINT, data=at_limit)), "UNKNOWN_OPERATION")
    over = {"operation": "nosuch", "v": "x" * (64 * 1024 + 1)}
    error(envelope(client.post(ENDPOINT, data=over)), "INVALID_PARAMETER")
    error(envelope(client.post(ENDPOINT, data={"operation": "nosuch", "n" * 257: "x"})),
          "INVALID_PARAMETER")


def test_oversized_multipart_field_gets_the_envelope(make_app):
    """Werkzeug refuses a multipart field above MAX_FORM_MEMORY_SIZE with a 413: the envelope."""
    client = make_app({"MAX_FORM_MEMORY_SIZE": 1000, "MAX_PARAMETER_LENGTH": 10_000}).test_client()
    response = client.post(ENDPOINT, data={"operation": "listtypes", "v": "x" * 5000},
                           content_type="multipart/form-data")
    error(envelope(response), "REQUEST_TOO_LARGE")


# --- Session ids: the format is checked before Redis is asked ----------------------------------------

MALFORMED_IDS = [
    "x",
    "A" * 22 + "." + "B" * 42,  # one character short
    "A" * 22 + "." + "B" * 44,  # one too many
    "A" * 22 + ":" + "B" * 43,
    "A" * 21 + "=." + "B" * 43,
    "A" * 22 + "." + "B" * 42 + "é",
    "A" * 5000,
    "null.",
    "../" * 30,
]


@pytest.mark.parametrize("session_id", MALFORMED_IDS)
@pytest.mark.parametrize("how", ["header", "sessionName"])
def test_malformed_session_ids_never_reach_redis(limited, session_id, how):
    headers = {"corebos-authorization": session_id} if how == "header" else {}
    params = {"operation": "listtypes"} if how == "header" else {
        "operation": "listtypes", "sessionName": session_id[:VALUE_LIMIT]}
    with NoRedis():
        body = envelope(limited.get(ENDPOINT, query_string=params, headers=headers))
    error(body, "AUTHENTICATION_REQUIRED", "Authentication required")


def test_well_formed_ids_are_looked_up(limited):
    before = CountingRedis.calls
    body = envelope(limited.get(ENDPOINT, query_string={"operation": "listtypes"},
                                headers={"corebos-authorization": "A" * 22 + "." + "B" * 43}))
    error(body, "AUTHENTICATION_REQUIRED")
    assert CountingRedis.calls > before


def test_logout_naming_a_malformed_session_refuses_without_ending_the_callers(limited_app, limited):
    alice = limited_app.extensions["wsgate"].users.add("alice")
    session_id = login(limited, "alice", alice.access_key)
    body = envelope(limited.post(ENDPOINT, data={"operation": "logout", "sessionName": "garbage"},
                                 headers={"corebos-authorization": session_id}))
    error(body, "AUTHENTICATION_REQUIRED")
    assert result(envelope(limited.get(ENDPOINT, query_string={
        "operation": "listtypes", "sessionName": session_id})))["types"] == ["Users"]


# --- Web cookies ---------------------------------------------------------------------------------------

MALFORMED_COOKIES = ["x", "A" * 42, "A" * 44, "A" * 42 + "!", "A" * 4000, "é" * 43]


@pytest.mark.parametrize("cookie", MALFORMED_COOKIES)
def test_malformed_web_cookies_never_reach_redis(limited_app, limited, cookie):
    limited.set_cookie("wsgate_session", cookie)
    with NoRedis():
        body = envelope(limited.post(ENDPOINT, data={"operation": "extendsession"},
                                     headers={"X-CSRFToken": "x"}))
    error(body, "AUTHENTICATION_FAILURE")
    with NoRedis():
        response = limited.get("/")
    assert response.status_code == 302


def test_well_formed_web_cookies_are_looked_up(limited):
    limited.set_cookie("wsgate_session", "A" * 43)
    before = CountingRedis.calls
    envelope(limited.post(ENDPOINT, data={"operation": "extendsession"}))
    assert CountingRedis.calls > before


# --- Found by the fuzzers (tests/fuzz) ------------------------------------------------------------


@pytest.mark.parametrize("name", ["\n", "\r\n"])
def test_a_multipart_part_without_a_readable_name_is_no_parameter(limited, name):
    """Werkzeug reads such a part's name as None; it used to end in INTERNAL_SERVER_ERROR."""
    response = limited.post(ENDPOINT, data={name: "x", "operation": "probe", "a": "b"},
                            content_type="multipart/form-data")
    assert result(envelope(response))["params"] == {"a": "b"}

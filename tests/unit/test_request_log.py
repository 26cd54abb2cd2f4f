"""The structured request log: one JSON line per webservice.php request, with its request id (also
in the answer's X-Request-Id), and never a secret."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest
import redis

from tests.conftest import TEST_SETTINGS
from tests.unit.web.support import PASSWORD, Env, make_env, md5_proof, ok
from webservice.serving import request_log
from webservice.standalone import create_app
from webservice.store.tokens import SessionId, handle_of

FIELDS = {"time", "request_id", "operation", "code", "duration_ms", "user", "session", "address"}
GENERATED_ID = re.compile(r"[0-9a-f]{32}")
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def records(self) -> list[dict]:
        parsed = [json.loads(line) for line in self.lines]
        for record in parsed:
            assert set(record) == FIELDS, record
            assert TIME.fullmatch(record["time"]), record
        return parsed


@pytest.fixture
def env() -> Env:
    return make_env()


@pytest.fixture
def alice(env: Env):
    return env.add_user("alice")


@pytest.fixture
def lines():
    handler = Lines()
    request_log.log.addHandler(handler)
    try:
        yield handler
    finally:
        request_log.log.removeHandler(handler)


def handle(session_name: str) -> str:
    parsed = SessionId.parse(session_name)
    assert parsed is not None
    return handle_of(parsed.family_id, parsed.member)


def test_one_line_per_request_with_its_fields(env, alice, lines):
    client = env.api(address="198.51.100.9")
    response = client.get(
        "/webservice.php", query_string={"operation": "getchallenge", "username": "alice"}
    )
    [record] = lines.records()
    assert record["operation"] == "getchallenge"
    assert record["code"] == "ok"
    assert record["user"] == "alice" and record["session"] == ""
    assert record["address"] == "198.51.100.9"
    assert isinstance(record["duration_ms"], float) and 0 <= record["duration_ms"] < 10_000
    assert GENERATED_ID.fullmatch(record["request_id"])
    assert response.headers["X-Request-Id"] == record["request_id"]


def test_errors_log_their_code(env, lines):
    env.call(env.api(), "listtypes", "GET", sessionName="nonsense")
    env.call(env.api(), "nosuchthing")
    env.call(env.api(), "login", username="alice")
    assert [(r["operation"], r["code"]) for r in lines.records()] == [
        ("listtypes", "AUTHENTICATION_REQUIRED"),
        ("nosuchthing", "UNKNOWN_OPERATION"),
        ("login", "MANDATORY_FIELDS_MISSING"),
    ]


def test_every_answer_gets_a_request_id_even_options(env, lines):
    response = env.api().open("/webservice.php", method="OPTIONS")
    [record] = lines.records()
    assert record["code"] == "METHOD_NOT_ALLOWED"
    assert response.headers["X-Request-Id"] == record["request_id"]


@pytest.mark.parametrize(
    "given",
    ["abc-123", "7f0c2f9e-9d3a-4b7e-8a57-1c5e0c1d2e3f", "Root=1-67891233-abcdef012345678912345678",
     "a" * 128, "svc.host:8080/a_b~c+d@e"],
)  # fmt: skip
def test_a_sane_client_request_id_is_kept(env, lines, given):
    response = env.api().get(
        "/webservice.php", query_string={"operation": "listtypes"}, headers={"X-Request-Id": given}
    )
    assert response.headers["X-Request-Id"] == given
    assert lines.records()[0]["request_id"] == given


@pytest.mark.parametrize(
    "given", ["a" * 129, "two words", 'quo"te', "semi;colon", "new\tline", "é", "<script>"]
)
def test_an_odd_client_request_id_is_replaced(env, lines, given):
    response = env.api().get(
        "/webservice.php", query_string={"operation": "listtypes"}, headers={"X-Request-Id": given}
    )
    assert GENERATED_ID.fullmatch(response.headers["X-Request-Id"])
    assert lines.records()[0]["request_id"] == response.headers["X-Request-Id"]


def test_request_ids_differ(env, lines):
    for _ in range(5):
        env.call(env.api(), "listtypes", "GET")
    ids = [record["request_id"] for record in lines.records()]
    assert len(set(ids)) == 5


def test_the_session_user_and_handle_are_logged(env, alice, lines):
    session_name = env.api_login(alice)
    env.call(env.api(), "listtypes", "GET", sessionName=session_name)
    env.call(env.api(), "logout", sessionName=session_name)
    getchallenge, login, listtypes, logout = lines.records()
    assert (getchallenge["user"], getchallenge["session"]) == ("alice", "")
    # login: the handle of the session it started, never its id.
    assert (login["code"], login["user"], login["session"]) == ("ok", "alice", handle(session_name))
    assert (listtypes["user"], listtypes["session"]) == ("alice", handle(session_name))
    assert (logout["user"], logout["session"]) == ("alice", handle(session_name))


def test_extendsession_logs_the_user_and_the_handle_it_gave(env, alice, lines):
    browser = env.browser()
    browser.login("alice")
    session_name = browser.extended_session()
    [record] = lines.records()
    assert (record["operation"], record["code"], record["user"], record["session"]) == (
        "extendsession",
        "ok",
        "alice",
        handle(session_name),
    )


def test_a_name_that_is_no_username_is_not_logged(env, lines):
    env.call(env.api(), "getchallenge", "GET", username="my secret password!")
    assert lines.records()[0]["user"] == ""


def test_an_unknown_operation_is_cut(env, lines):
    env.call(env.api(), "x" * 500)
    [record] = lines.records()
    assert record["operation"] == "x" * 64


def test_no_secret_is_ever_logged(env, alice, lines):
    """A whole walk: challenge, login, calls by parameter and by header, a wrong proof, the web
    login with its password, extendsession, logouts. None of the secrets appears in any line."""
    client = env.api()
    token = ok(env.call(client, "getchallenge", "GET", username="alice"))["token"]
    proof = md5_proof(token, alice.access_key)
    session_name = ok(env.call(client, "login", username="alice", accessKey=proof))["sessionName"]
    env.call(client, "listtypes", "GET", sessionName=session_name)
    client.get(
        "/webservice.php",
        query_string={"operation": "listtypes"},
        headers={"corebos-authorization": session_name},
    )
    wrong_token = ok(env.call(client, "getchallenge", "GET", username="alice"))["token"]
    env.call(client, "login", username="alice", accessKey=md5_proof(wrong_token, "wrong"))
    browser = env.browser()
    browser.login("alice")
    cookie = browser.cookie
    extended = browser.extended_session()
    env.call(client, "logout", sessionName=extended)
    env.call(client, "logout", sessionName=session_name)

    text = "\n".join(lines.lines)
    assert len(lines.records()) == 9
    secrets = [
        session_name, session_name.split(".")[1], extended, extended.split(".")[1], cookie,
        token, wrong_token, proof, alice.access_key, PASSWORD,
    ]  # fmt: skip
    for secret in secrets:
        assert secret not in text, secret


def test_an_unexpected_failure_names_the_request_id(env, alice, lines, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(env.gateway.sessions, "list_for_user", broken)
    session_name = env.api_login(alice)
    response = env.api().get(
        "/webservice.php",
        query_string={"operation": "listsessions", "sessionName": session_name},
        headers={"X-Request-Id": "trace-me-42"},
    )
    assert response.get_json()["error"]["code"] == "INTERNAL_SERVER_ERROR"
    assert lines.records()[-1]["code"] == "INTERNAL_SERVER_ERROR"
    assert any("trace-me-42" in record.getMessage() for record in caplog.records)


class DownRedis:
    """A web-session client whose Redis is gone."""

    def __getattr__(self, name):
        def fail(*args, **kwargs):
            raise redis.ConnectionError("down")

        return fail


def test_answers_given_outside_the_view_are_logged_too(fake_redis, lines):
    """A browser's cookie makes Flask-Session read Redis before the endpoint runs; when that fails,
    the app's error handler answers SERVICE_UNAVAILABLE, and the request still gets its line."""
    app = create_app(
        {**TEST_SETTINGS, "TESTING": False}, redis_client=fake_redis, web_session_client=DownRedis()
    )
    client = app.test_client()
    client.set_cookie(app.config["SESSION_COOKIE_NAME"], "A" * 43)
    response = client.post(
        "/webservice.php", data={"operation": "extendsession"}, headers={"X-Request-Id": "r-1"}
    )
    assert response.get_json()["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert response.headers["X-Request-Id"] == "r-1"
    [record] = lines.records()
    assert (record["request_id"], record["code"]) == ("r-1", "SERVICE_UNAVAILABLE")


def test_other_paths_get_no_line(env, lines):
    env.api().get("/healthz")
    env.api().get("/login")
    env.api().get("/metrics")
    assert lines.lines == []


def test_the_log_level_silences_it(lines):
    env = make_env({"LOG_LEVEL": "WARNING"})
    try:
        response = env.call(env.api(), "listtypes", "GET")
        assert response["error"]["code"] == "AUTHENTICATION_REQUIRED"
        assert lines.lines == []
    finally:
        logging.getLogger("webservice").setLevel(TEST_SETTINGS.get("LOG_LEVEL", "INFO"))


def test_the_own_handler_writes_one_bare_json_line_per_request(env, monkeypatch):
    """Unless logging is configured otherwise, the line goes to standard output as it is."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    monkeypatch.setattr(request_log.log, "handlers", [handler])
    monkeypatch.setattr(request_log, "_own_handler", handler)
    env.call(env.api(), "listtypes", "GET")
    env.call(env.api(), "getchallenge", "GET", username="alice")
    first, second = stream.getvalue().splitlines()
    assert json.loads(first)["operation"] == "listtypes"
    assert json.loads(second)["operation"] == "getchallenge"
    # A filter (or another handler) sends the line through logging again.
    handler.addFilter(lambda record: "getchallenge" not in record.getMessage())
    env.call(env.api(), "getchallenge", "GET", username="alice")
    env.call(env.api(), "listtypes", "GET")
    assert [json.loads(line)["operation"] for line in stream.getvalue().splitlines()] == [
        "listtypes", "getchallenge", "listtypes"
    ]


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("listtypes", "203.0.113.7"),
        ('"quoted" \\ back\\slash', None),
        ("control \x00\x1f\n\t and \x7f", "::1"),
        ("non-ASCII é ☃ 𝄞 and a lone surrogate \udc80", "2001:db8::1"),
    ],
)
def test_the_line_is_what_json_dumps_writes(text, address):
    """The line is built by hand (request_log.line_of): it must be exactly json.dumps's line."""
    trace = request_log.Trace(text)
    trace.requested, trace.user, trace.session = text, text, text
    line = request_log.line_of(trace, text, 0.0123456, address)
    record = json.loads(line)
    assert line == json.dumps(record, separators=(",", ":"))
    assert list(record) == [
        "time", "request_id", "operation", "code", "duration_ms", "user", "session", "address"
    ]
    assert TIME.fullmatch(record["time"])
    for name in ("request_id", "operation", "code", "user", "session"):
        assert record[name] == text
    assert record["duration_ms"] == 12.346
    assert record["address"] == address

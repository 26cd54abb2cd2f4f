"""No secret in any log line, audit entry or error message.

Representative flows run with every logger at DEBUG and standard output and error captured: API
login and logout (GET and POST, the header and sessionName), failed logins of every kind, web
login, extendsession and web logout, failed web logins, and the operator commands. Then every
log line, every audit entry and every error message of the envelope is searched for every secret
the flows handled: access keys, passwords, challenge tokens, login proofs, token + access key,
session ids and their secret halves, the web cookie and its CSRF token, the signing key.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import TEST_SETTINGS
from webservice.api.gateway import EXTENSION_KEY
from webservice.standalone import create_app

PASSWORD = "correct horse battery staple 42"
COOKIE = "wsgate_session"
#: Loggers that get DEBUG besides the root (libraries configure some of their own).
LOGGERS = ["", "webservice", "operations", "werkzeug", "flask", "flask_wtf", "flask_session",
           "redis", "urllib3", "argon2", "marshmallow"]


class Collector(logging.Handler):
    """Every record, formatted with its arguments, traceback and extra fields."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(pathname)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))
        self.lines.append(repr(record.__dict__))


class Secrets:
    """Everything the flows must never write down, with where it came from."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def add(self, what: str, value: str | None) -> None:
        if value:
            assert len(value) >= 8, (what, value)  # short values would match by accident
            self.values[value] = what

    def session(self, what: str, session_id: str) -> None:
        self.add(what, session_id)
        self.add(f"{what} (secret half)", session_id.partition(".")[2])

    def found_in(self, text: str) -> list[str]:
        return [f"{what}: {value[:12]}…" for value, what in self.values.items() if value in text]


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


@pytest.fixture
def collector(real_redis, redis_server) -> Iterator[Collector]:
    # An app made first: the loggers it configures (the request log's) exist when the handler
    # is attached.
    create_app({**TEST_SETTINGS, "REDIS_URL": redis_server.url})
    handler = Collector()
    levels = {name: logging.getLogger(name).level for name in LOGGERS}
    # The root, and every logger that keeps its records to itself (the request log's).
    hosts = [logging.getLogger()] + [
        logger for logger in logging.root.manager.loggerDict.values()
        if isinstance(logger, logging.Logger) and not logger.propagate
    ]
    for host in hosts:
        host.addHandler(handler)
    for name in LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        for host in hosts:
            host.removeHandler(handler)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


@pytest.fixture
def app(redis_server, real_redis, collector):
    application = create_app({**TEST_SETTINGS, "REDIS_URL": redis_server.url,
                              "LOG_LEVEL": "DEBUG", "HIDE_UNKNOWN_USERS": False,
                              "LOGIN_FAILURE_LIMIT": 100, "LOGIN_ADDRESS_FAILURE_LIMIT": 100})
    with application.app_context():
        yield application


class Flows:
    """Runs the flows, collecting secrets and every error message on the way."""

    def __init__(self, app: Any, secrets: Secrets) -> None:
        self.app = app
        self.secrets = secrets
        self.client = app.test_client(use_cookies=False)
        self.messages: list[str] = []

    def call(self, method: str = "POST", headers: dict | None = None, **params: Any) -> dict:
        if method == "GET":
            response = self.client.get("/webservice.php", query_string=params, headers=headers)
        else:
            response = self.client.post("/webservice.php", data=params, headers=headers)
        body = response.get_json()
        if not body["success"]:
            self.messages.append(body["error"]["message"])
        return body

    def challenge(self, username: str) -> str:
        body = self.call("GET", operation="getchallenge", username=username)
        token = body["result"]["token"]
        self.secrets.add("challenge token", token)
        return token

    def api_login(self, username: str, access_key: str, method: str = "POST") -> str:
        token = self.challenge(username)
        self.secrets.add("token + access key", token + access_key)
        proof = md5(token + access_key)
        self.secrets.add("login proof", proof)
        body = self.call(method, operation="login", username=username, accessKey=proof)
        assert body["success"], body
        session_id = body["result"]["sessionName"]
        self.secrets.session("API session id", session_id)
        return session_id

    def cli(self, *args: str) -> str:
        outcome = self.app.test_cli_runner().invoke(args=list(args))
        assert outcome.exit_code == 0, outcome.output
        return outcome.output


def test_no_secret_in_logs_audit_or_messages(app, collector, capfd):
    secrets = Secrets()
    secrets.add("signing key", str(app.secret_key))
    flows = Flows(app, secrets)
    gateway = app.extensions[EXTENSION_KEY]

    # --- Operators add users (these commands print the key or password on purpose) ------------
    added = json.loads(flows.cli("users", "add", "alice", "--password", PASSWORD, "--json"))
    access_key = added["accessKey"]
    secrets.add("access key", access_key)
    secrets.add("password", PASSWORD)
    bob = gateway.users.add("bob")
    secrets.add("access key", bob.access_key)
    gateway.users.add("nokey")
    gateway.redis.hset(gateway.keys.user("nokey"), "key", "")
    # (The click runner keeps what commands print: the key printed above is not in capfd.)

    # --- API: logins, calls and logouts, GET and POST, header and sessionName ---------------------
    first = flows.api_login("alice", access_key)
    assert flows.call("GET", operation="listtypes", sessionName=first)["success"]
    assert flows.call("GET", headers={"corebos-authorization": first}, operation="listsessions")["success"]
    second = flows.api_login("alice", access_key, method="GET")
    assert flows.call(operation="logout", sessionName=second)["success"]
    assert not flows.call(operation="listtypes", sessionName=second)["success"]  # ended
    third = flows.api_login("alice", access_key)
    assert flows.call(headers={"corebos-authorization": third}, operation="logout")["success"]

    # --- API: failed logins of every kind ----------------------------------------------------------
    token = flows.challenge("alice")
    wrong = md5(token + "not the key at all")
    secrets.add("login proof (wrong)", wrong)
    assert not flows.call(operation="login", username="alice", accessKey=wrong)["success"]
    assert not flows.call(operation="login", username="alice",
                          accessKey=md5("0" * 32 + access_key))["success"]  # no live token
    secrets.add("login proof (stale)", md5("0" * 32 + access_key))
    assert not flows.call(operation="login", username="alice", accessKey=access_key)["success"]
    token = flows.challenge("bob")
    gateway.users.set_active("bob", False)
    secrets.add("token + access key", token + bob.access_key)
    bob_proof = md5(token + bob.access_key)
    secrets.add("login proof", bob_proof)
    assert not flows.call(operation="login", username="bob", accessKey=bob_proof)["success"]
    assert not flows.call("GET", operation="getchallenge", username="nobody")["success"]
    flows.challenge("nokey")
    assert not flows.call(operation="login", username="nokey", accessKey=wrong)["success"]
    # A password typed into the username field, and a session id that is no longer live.
    assert not flows.call(operation="login", username=PASSWORD, accessKey=wrong)["success"]
    assert not flows.call(operation="listtypes", sessionName=second)["success"]
    assert not flows.call(headers={"corebos-authorization": second}, operation="logout")["success"]
    # An access key or session id sent where a handle or operation name belongs.
    assert not flows.call(operation="endsession", sessionName=first, handle=access_key)["success"]
    assert not flows.call(operation=access_key)["success"]
    assert not flows.call(operation="listtypes", sessionName=access_key)["success"]

    # --- Web UI: failed and good logins, extendsession, logout ---------------------------------------
    web = app.test_client()
    page = web.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    secrets.add("CSRF token", csrf)
    assert web.post("/login", data={"csrf_token": csrf, "username": "alice",
                                    "password": PASSWORD + "x"}).status_code == 401
    secrets.add("wrong password", PASSWORD + "x")
    assert web.post("/login", data={"csrf_token": csrf, "username": PASSWORD,
                                    "password": "whatever123"}).status_code == 401
    assert web.post("/login", data={"csrf_token": csrf, "username": "alice",
                                    "password": PASSWORD}).status_code == 302
    cookie = web.get_cookie(COOKIE).value
    secrets.add("web cookie", cookie)
    page = web.get("/").get_data(as_text=True)
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    secrets.add("CSRF token", csrf)
    extended = web.post("/webservice.php", data={"operation": "extendsession"},
                        headers={"X-CSRFToken": csrf}).get_json()
    assert extended["success"], extended
    secrets.session("extended session id", extended["result"]["sessionName"])
    refused = web.post("/webservice.php", data={"operation": "extendsession"},
                       headers={"Origin": "https://evil.example"}).get_json()
    flows.messages.append(refused["error"]["message"])
    assert web.get("/sessions").status_code == 200
    assert flows.call(operation="listtypes",
                      sessionName=extended["result"]["sessionName"])["success"]
    assert web.post("/logout", data={"csrf_token": csrf}).status_code == 302
    assert not flows.call(operation="listtypes",
                          sessionName=extended["result"]["sessionName"])["success"]
    # A forged or stale form: CSRF failures are logged by Flask-WTF at INFO.
    assert web.post("/logout", data={"csrf_token": csrf + "x"}).status_code == 400
    stale = app.test_client()
    stale.set_cookie(COOKIE, cookie)
    assert stale.get("/").status_code == 302

    # --- Operators: list, revoke, audit, reset a key, disable ------------------------------------------
    fourth = flows.api_login("alice", access_key)
    listing = flows.cli("sessions", "list", "alice", "--json")
    handle = json.loads(listing.splitlines()[0])["handle"]
    listing += flows.cli("sessions", "list")
    flows.cli("sessions", "revoke", handle)
    flows.api_login("alice", access_key)
    flows.cli("sessions", "revoke-user", "alice")
    assert not flows.call(operation="listtypes", sessionName=fourth)["success"]
    audit_text = flows.cli("audit", "tail", "-n", "1000") + flows.cli("audit", "tail", "--json",
                                                                      "-n", "1000")
    # users list and reset-key show access keys to the operator on purpose.
    flows.cli("users", "list")
    flows.cli("operations", "list")
    reset = json.loads(flows.cli("users", "reset-key", "alice", "--json"))
    secrets.add("new access key", reset["accessKey"])
    flows.cli("users", "disable", "alice")
    printed = capfd.readouterr()

    # --- Nothing secret anywhere ---------------------------------------------------------------------------
    assert len(secrets.values) >= 20, secrets.values
    logs = "\n".join(collector.lines)
    assert '"operation":"login"' in logs, "the request log is not captured"
    assert "CSRF" in logs, "Flask-WTF's log is not captured"
    leaks = secrets.found_in(logs)
    assert not leaks, f"secrets in the log: {leaks}"
    # Standard output and error: the request log's lines (through logging, also checked above) and
    # anything printed directly.
    output = printed.out + printed.err
    assert not secrets.found_in(output), f"secrets printed: {secrets.found_in(output)}"
    assert not secrets.found_in(listing), f"secrets in sessions list: {secrets.found_in(listing)}"
    entries = [entry.event.as_fields() for entry in gateway.audit.tail(100000)[0]]
    assert {"login", "login_failed", "extend", "logout", "end"} <= {e["event"] for e in entries}
    audit = json.dumps(entries) + audit_text
    assert not secrets.found_in(audit), f"secrets in the audit trail: {secrets.found_in(audit)}"
    assert flows.messages, "no error was answered"
    for message in flows.messages:
        assert not secrets.found_in(message), (message, secrets.found_in(message))


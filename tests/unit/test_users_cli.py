"""The operator commands: ``flask users ...`` and ``flask operations list``."""

from __future__ import annotations

import json
import re

import pytest

from tests.unit.support import (
    alive,
    challenge,
    error,
    login,
    login_body,
    post,
    proof,
    result,
)


@pytest.fixture
def cli(app):
    runner = app.test_cli_runner()

    def invoke(*args):
        return runner.invoke(args=list(args))

    return invoke


def add(cli, name):
    outcome = cli("users", "add", name, "--json")
    assert outcome.exit_code == 0, outcome.output
    return json.loads(outcome.output)


# --- users add -------------------------------------------------------------------------------------


def test_users_add_json(cli, client):
    record = add(cli, "carol")
    assert set(record) >= {"username", "userId", "accessKey"}
    assert record["username"] == "carol"
    assert re.fullmatch(r"19x[1-9][0-9]*", record["userId"])
    assert isinstance(record["accessKey"], str) and len(record["accessKey"]) >= 16
    # The printed key is the one that logs in.
    assert result(login_body(client, "carol", record["accessKey"]))["userId"] == record["userId"]


def test_users_add_gives_distinct_ids_and_keys(cli):
    records = [add(cli, f"user{i}") for i in range(4)]
    assert len({r["userId"] for r in records}) == 4
    assert len({r["accessKey"] for r in records}) == 4


def test_users_add_plain_output_shows_the_key(cli, client):
    outcome = cli("users", "add", "dave")
    assert outcome.exit_code == 0, outcome.output
    key = re.search(r"access key:\s*(\S+)", outcome.output).group(1)
    assert login(client, "dave", key)


def test_users_add_with_generated_password(cli, gateway):
    outcome = cli("users", "add", "erin", "--generate-password", "--json")
    assert outcome.exit_code == 0, outcome.output
    record = json.loads(outcome.output)
    assert len(record["password"]) >= 12
    assert gateway.users.get("erin").password_hash is not None


def test_users_add_duplicate_fails(cli, gateway):
    first = add(cli, "carol")
    outcome = cli("users", "add", "carol", "--json")
    assert outcome.exit_code != 0
    assert "already exists" in outcome.output
    # The existing user is untouched.
    assert gateway.users.get("carol").access_key == first["accessKey"]


@pytest.mark.parametrize(
    "name", ["bad name", "x" * 65, "a/b", "a:b", "{tag}", "ünïcode", "a*", "tab\there", "new\nline"]
)
def test_users_add_refuses_invalid_names(cli, gateway, name):
    before = gateway.redis.keys("*")
    outcome = cli("users", "add", name)
    assert outcome.exit_code != 0
    assert "invalid username" in outcome.output
    assert gateway.redis.keys("*") == before


def test_users_add_refuses_empty_name(cli):
    outcome = cli("users", "add", "")
    assert outcome.exit_code != 0


@pytest.mark.parametrize("name", ["a", "x" * 64, "first.last@example.com", "a_b-c+d"])
def test_users_add_accepts_valid_names(cli, client, name):
    record = add(cli, name)
    assert login(client, name, record["accessKey"])


# --- users list ------------------------------------------------------------------------------------


def test_users_list(cli):
    carol = add(cli, "carol")
    dave = add(cli, "dave")
    cli("users", "disable", "dave")
    outcome = cli("users", "list")
    assert outcome.exit_code == 0, outcome.output
    lines = outcome.output.strip().splitlines()
    assert len(lines) == 2
    assert "carol" in lines[0] and carol["userId"] in lines[0] and "inactive" not in lines[0]
    assert "dave" in lines[1] and dave["userId"] in lines[1] and "inactive" in lines[1]
    assert carol["accessKey"] not in outcome.output and dave["accessKey"] not in outcome.output


def test_users_list_json(cli):
    add(cli, "carol")
    outcome = cli("users", "list", "--json")
    assert outcome.exit_code == 0, outcome.output
    records = [json.loads(line) for line in outcome.output.strip().splitlines()]
    assert [r["username"] for r in records] == ["carol"]
    assert records[0]["active"] is True
    assert "accessKey" not in records[0]


def test_users_list_empty(cli):
    outcome = cli("users", "list")
    assert outcome.exit_code == 0
    assert outcome.output.strip() == ""


# --- users disable / enable ----------------------------------------------------------------------


def test_users_disable_and_enable(cli, client, gateway):
    carol = add(cli, "carol")
    key = carol["accessKey"]
    sessions = [login(client, "carol", key) for _ in range(3)]
    other = add(cli, "dave")
    other_session = login(client, "dave", other["accessKey"])

    outcome = cli("users", "disable", "carol")
    assert outcome.exit_code == 0, outcome.output
    assert "3" in outcome.output  # sessions ended
    for session_id in sessions:
        assert not alive(client, session_id)
        assert not gateway.redis.exists(gateway.keys.family(session_id.split(".")[0]))
    assert alive(client, other_session)
    error(login_body(client, "carol", key), "AUTHENTICATION_REQUIRED", "Given user is inactive")

    outcome = cli("users", "enable", "carol")
    assert outcome.exit_code == 0, outcome.output
    assert alive(client, login(client, "carol", key))


def test_users_disable_ends_a_session_whose_token_was_replayed(cli, client):
    """A replayed login must not hide the live session from "end all sessions of this user"."""
    carol = add(cli, "carol")
    token = challenge(client, "carol")["token"]
    answer = proof(token, carol["accessKey"])
    session_id = result(post(client, operation="login", username="carol", accessKey=answer))["sessionName"]
    error(post(client, operation="login", username="carol", accessKey=answer), "INVALID_AUTH_TOKEN")
    outcome = cli("users", "disable", "carol")
    assert outcome.exit_code == 0, outcome.output
    assert not alive(client, session_id)


@pytest.mark.parametrize("command", ["disable", "enable", "reset-key"])
def test_user_commands_on_unknown_user_fail(cli, gateway, command):
    before = gateway.redis.keys("*")
    outcome = cli("users", command, "nobody")
    assert outcome.exit_code != 0
    assert "nobody" in outcome.output
    assert gateway.redis.keys("*") == before


# --- users reset-key ---------------------------------------------------------------------------------


def test_users_reset_key(cli, client):
    carol = add(cli, "carol")
    outcome = cli("users", "reset-key", "carol", "--json")
    assert outcome.exit_code == 0, outcome.output
    new_key = json.loads(outcome.output)["accessKey"]
    assert new_key != carol["accessKey"] and len(new_key) >= 16
    error(login_body(client, "carol", carol["accessKey"]), "INVALID_USER_CREDENTIALS")
    assert login(client, "carol", new_key)


def test_users_reset_key_plain(cli, client):
    add(cli, "carol")
    outcome = cli("users", "reset-key", "carol")
    assert outcome.exit_code == 0, outcome.output
    key = re.search(r"access key:\s*(\S+)", outcome.output).group(1)
    assert login(client, "carol", key)


# --- operations list -------------------------------------------------------------------------------


def test_operations_list(cli, gateway):
    outcome = cli("operations", "list")
    assert outcome.exit_code == 0, outcome.output
    text = outcome.output
    lines = text.splitlines()
    ops = list(gateway.operations)
    assert {"getchallenge", "login", "logout", "listtypes"} <= {op.name for op in ops}
    for op in ops:
        line = next((line for line in lines if line.split()[:1] == [op.name]), None)
        assert line is not None, (op.name, text)
        if op.needs_session:
            assert "no session" not in line and "session" in line, line
        else:
            assert "no session" in line, line
        for name, kind, required in op.describe_params():
            assert f"{name}:{kind}{'' if required else '?'}" in line, line
        if not op.describe_params():
            assert "no parameters" in line, line
    login_line = next(line for line in lines if line.startswith("login "))
    assert "username:string" in login_line and "accessKey:string" in login_line
    logout_line = next(line for line in lines if line.startswith("logout "))
    assert "sessionName:string?" in logout_line

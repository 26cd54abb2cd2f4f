"""HIDE_UNKNOWN_USERS (on by default): getchallenge and login answer a name that is no user, an
inactive user and a user without an access key exactly as a user with a wrong access key."""

from __future__ import annotations

import importlib
import re
import time

import pytest

from tests.unit.conftest import gateway_of
from tests.unit.support import challenge, error, get, post, proof, result, snapshot

WRONG = ("INVALID_USER_CREDENTIALS", "Invalid username or password")
BAD_TOKEN = ("INVALID_AUTH_TOKEN", "Specified token is invalid or expired")
login_module = importlib.import_module("webservice.auth.login")


@pytest.fixture
def hidden(make_app):
    app = make_app({"HIDE_UNKNOWN_USERS": True})
    gateway_of(app).users.add("alice")
    return app


@pytest.fixture
def client(hidden):
    return hidden.test_client()


@pytest.fixture
def gateway(hidden):
    return gateway_of(hidden)


def login_answer(client, username: str, access_key: str = "wrong", token: str | None = None):
    if token is None:
        token = challenge(client, username)["token"]
    return post(client, operation="login", username=username, accessKey=proof(token, access_key))


def test_it_is_on_by_default():
    from webservice import settings as defaults

    assert defaults.HIDE_UNKNOWN_USERS is True


@pytest.mark.parametrize("username", ["nobody", "ALICE", "alice.", "bob@example.com"])
def test_getchallenge_answers_any_name_like_a_user(client, username):
    known = challenge(client, "alice")
    decoy = challenge(client, username)
    assert set(decoy) == set(known) == {"token", "serverTime", "expireTime"}
    assert re.fullmatch(r"[0-9a-f]{32}", decoy["token"]) and re.fullmatch(r"[0-9a-f]{32}", known["token"])
    assert decoy["expireTime"] - decoy["serverTime"] == known["expireTime"] - known["serverTime"] == 300
    assert abs(decoy["serverTime"] - int(time.time())) <= 2
    assert challenge(client, username)["token"] != decoy["token"]


def test_a_name_that_cannot_be_a_user_gets_a_token_stored_nowhere(client, gateway):
    before = snapshot(gateway.redis)
    answer = challenge(client, "not a name!")
    assert re.fullmatch(r"[0-9a-f]{32}", answer["token"])
    assert answer["expireTime"] - answer["serverTime"] == 300
    assert snapshot(gateway.redis) == before
    error(login_answer(client, "not a name!"), *WRONG)


def test_decoys_never_make_a_user(client, gateway):
    for _ in range(3):
        challenge(client, "nobody")
    assert gateway.users.get("nobody") is None
    assert [user.username for user in gateway.users.all()] == ["alice"]
    assert not gateway.redis.exists(gateway.keys.user("nobody"))


def test_decoy_records_are_capped_and_expire(client, gateway):
    for _ in range(gateway.settings["CHALLENGE_MAX_OUTSTANDING"] + 10):
        challenge(client, "nobody")
    key = gateway.keys.decoy_challenges("nobody")
    assert len(gateway.redis.hgetall(key)) == gateway.settings["CHALLENGE_MAX_OUTSTANDING"]
    assert 0 < gateway.redis.pttl(key) <= 300_000


def test_the_decoy_record_shares_the_user_keys_slot(gateway):
    """Cluster: the getchallenge script touches both keys, so they need one hash slot."""
    user_key = gateway.keys.user("nobody")
    assert gateway.keys.decoy_challenges("nobody") == "{" + user_key + "}:decoy"


def test_login_of_an_unknown_name_is_a_wrong_key(client):
    error(login_answer(client, "alice"), *WRONG)
    error(login_answer(client, "nobody"), *WRONG)


def test_login_without_a_challenge_is_a_bad_token_for_anyone(client):
    error(login_answer(client, "alice", token="0" * 32), *BAD_TOKEN)
    error(login_answer(client, "nobody", token="0" * 32), *BAD_TOKEN)


def test_once_the_decoys_expire_it_is_a_bad_token_as_for_a_user(make_app):
    app = make_app({"HIDE_UNKNOWN_USERS": True, "CHALLENGE_TTL": 1})
    gateway_of(app).users.add("alice")
    client = app.test_client()
    tokens = {name: challenge(client, name)["token"] for name in ("alice", "nobody")}
    time.sleep(1.1)
    for name, token in tokens.items():
        error(login_answer(client, name, token=token), *BAD_TOKEN)


def test_an_inactive_user_looks_like_a_wrong_key(client, gateway):
    alice = gateway.users.get("alice")
    gateway.users.set_active("alice", False)
    error(login_answer(client, "alice", alice.access_key), *WRONG)


def test_a_user_without_access_key_looks_like_a_wrong_key(client, gateway):
    gateway.redis.hset(gateway.keys.user("alice"), "key", "")
    error(login_answer(client, "alice", ""), *WRONG)


def test_the_right_key_still_logs_in(client, gateway):
    alice = gateway.users.get("alice")
    assert result(login_answer(client, "alice", alice.access_key))["userId"] == f"19x{alice.id}"


def test_same_hashing_work_for_a_name_and_a_user(client, monkeypatch):
    """One MD5 per outstanding token either way (the decoy is checked against a key nobody knows)."""
    digests = []
    original = login_module.find_proven_token

    def counting(tokens, access_key, given):
        digests.append(len(tokens))
        return original(tokens, access_key, given)

    monkeypatch.setattr(login_module, "find_proven_token", counting)
    for name in ("alice", "nobody"):
        for _ in range(3):
            challenge(client, name)
        error(login_answer(client, name), *WRONG)
    assert digests == [4, 4]


#: The name of each command in a packed request (RESP arrays of bulk strings).
COMMAND_NAME = re.compile(rb"(?:^|\r\n)\*\d+\r\n\$\d+\r\n([A-Za-z]+)(?=\r\n)")


@pytest.mark.parametrize("host_hears_first", [False, True], ids=["cap in script", "host hears"])
def test_same_redis_commands_for_a_name_and_a_user(hidden, monkeypatch, host_hears_first):
    """getchallenge and a failed login send the same commands, in the same round trips: with the
    family cap kept by the script that opens a family, and with a host's receiver that must hear
    of endings first (then a login reads the user's live families in its first round trip)."""
    gateway = gateway_of(hidden)
    if host_hears_first:
        from webservice import events

        events.family_ended.connect(lambda sender, **extra: None, sender=hidden, weak=False)
    sent: list[list[str]] = []
    # Counted where every command leaves, whichever way it took (a pipeline, a script, the
    # direct line of store/direct.py): one list of command names per send.
    connection_class = gateway.redis.connection_pool.connection_class
    original_send = connection_class.send_packed_command

    def send(self, command, check_health=True):
        data = command if isinstance(command, (bytes, str)) else b"".join(command)
        data = data.encode() if isinstance(data, str) else data
        sent.append([name.decode().upper() for name in COMMAND_NAME.findall(data)])
        return original_send(self, command, check_health)

    monkeypatch.setattr(connection_class, "send_packed_command", send)

    def trace(name):
        sent.clear()
        client = hidden.test_client()
        token = challenge(client, name)["token"]
        error(login_answer(client, name, token=token), *WRONG)
        return list(sent)

    gateway.users.add("bob")
    trace("alice")  # loads the scripts; this process now knows alice's id
    unknown, known, not_yet_known = trace("nobody"), trace("alice"), trace("bob")
    assert unknown == known == not_yet_known
    assert known == [
        # The getchallenge in one step (a single Redis): the rate bucket, the token, its
        # pending challenge, the address's cap.
        ["EVALSHA"],
        # user, decoys, whether the proof is a spent one, failure counters (username at this
        # address, username, address), whether the address is known for the name, and where a
        # host hears first, the user's live families
        ["HGETALL", "HGETALL", "ZSCORE", "GET", "PTTL", "GET", "PTTL", "GET", "PTTL", "HGET",
         *(["ZCOUNT", "ZRANGEBYSCORE"] if host_hears_first else [])],
        ["EVALSHA", "EVALSHA", "EVALSHA", "XADD"],  # count the failure, audit it
    ]


def test_off_gives_the_corebos_answers(make_app):
    app = make_app({"HIDE_UNKNOWN_USERS": False})
    gateway_of(app).users.add("alice")
    client = app.test_client()
    error(get(client, operation="getchallenge", username="nobody"), "AUTHENTICATION_REQUIRED", "Given user cannot be found: nobody")
    error(
        post(client, operation="login", username="nobody", accessKey="0" * 32),
        "AUTHENTICATION_REQUIRED",
        "Given user cannot be found",
    )
    assert not [key for key in gateway_of(app).redis.scan_iter() if key.endswith(":decoy")]


def test_a_token_of_a_decoy_never_logs_anyone_in(client, gateway):
    """Even once the name becomes a user: the decoy token is in no user record."""
    token = challenge(client, "carol")["token"]
    carol = gateway.users.add("carol")
    error(login_answer(client, "carol", carol.access_key, token=token), *BAD_TOKEN)

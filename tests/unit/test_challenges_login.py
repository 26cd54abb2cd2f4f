"""getchallenge and login (protocol.md §4-5, §7): single-use, short-lived, concurrent challenges."""

from __future__ import annotations

import random
import re
import time

import pytest

from tests.unit.conftest import gateway_of
from tests.unit.support import (
    alive,
    challenge,
    error,
    get,
    login,
    login_body,
    post,
    proof,
    result,
    snapshot,
)
from webservice.store.challenges import proof_digest
from webservice.store.tokens import family_id_for_challenge, hash_secret

USER_NOT_FOUND = "Given user cannot be found"
BAD_TOKEN = "Specified token is invalid or expired"


def with_alice(make_app, settings):
    """An app made with ``settings``, its gateway, its user alice and a test client."""
    app = make_app(settings)
    gateway = gateway_of(app)
    return gateway, gateway.users.add("alice"), app.test_client()


def login_with(client, token, access_key, username="alice", method=post):
    return method(client, operation="login", username=username, accessKey=proof(token, access_key))


# --- getchallenge -------------------------------------------------------------------------------


#: The two ways a getchallenge is issued: one script on a single Redis, a pipeline of three
#: (after the rate limit's own round trip) on a Redis Cluster (store/challenges.py).
BOTH_WAYS = pytest.mark.parametrize("in_one_step", [True, False], ids=["one step", "pipeline"])


def test_challenge_result_shape_and_times(client, alice, gateway):
    before = int(time.time())
    answer = challenge(client, "alice")
    after = int(time.time())
    assert set(answer) == {"token", "serverTime", "expireTime"}
    assert isinstance(answer["token"], str) and len(answer["token"]) >= 16
    for name in ("serverTime", "expireTime"):
        assert type(answer[name]) is int, answer
    assert answer["expireTime"] - answer["serverTime"] == gateway.settings["CHALLENGE_TTL"] == 300
    assert before - 2 <= answer["serverTime"] <= after + 2


def test_challenge_ttl_follows_the_setting(make_app):
    app = make_app({"CHALLENGE_TTL": 45})
    gateway_of(app).users.add("alice")
    answer = challenge(app.test_client(), "alice")
    assert answer["expireTime"] - answer["serverTime"] == 45


def test_each_getchallenge_gives_a_new_token(client, alice):
    tokens = [challenge(client, "alice")["token"] for _ in range(10)]
    assert len(set(tokens)) == 10


@BOTH_WAYS
@pytest.mark.parametrize("username", ["nobody", "alice ", "a*", "", "x" * 65, "al:ice", "{alice}"])
def test_getchallenge_for_unknown_user(client, alice, redis, gateway, username, in_one_step):
    gateway.challenges.in_one_step = in_one_step
    before = snapshot(redis)
    body = get(client, operation="getchallenge", username=username)
    if username == "":
        error(body, "MANDATORY_FIELDS_MISSING")
    else:
        named = f": {username}" if username == "nobody" else ""  # only a name that can be one
        error(body, "AUTHENTICATION_REQUIRED", USER_NOT_FOUND + named)
    assert snapshot(redis) == before


def test_getchallenge_without_username(client):
    message = error(get(client, operation="getchallenge"), "MANDATORY_FIELDS_MISSING")
    assert "username" in message


# --- login: the happy path ------------------------------------------------------------------------


@pytest.mark.parametrize("method", [get, post])
def test_login_result(client, alice, method):
    token = challenge(client, "alice")["token"]
    answer = result(login_with(client, token, alice.access_key, method=method))
    assert set(answer) == {"sessionName", "userId", "version", "vtigerVersion"}
    assert answer["userId"] == f"19x{alice.id}"
    assert re.fullmatch(r"19x[1-9][0-9]*", answer["userId"])
    assert answer["version"] == "0.22"
    assert isinstance(answer["vtigerVersion"], str) and answer["vtigerVersion"]
    assert alive(client, answer["sessionName"])


def test_proof_in_upper_case_hex_is_accepted(client, alice):
    token = challenge(client, "alice")["token"]
    body = post(client, operation="login", username="alice", accessKey=proof(token, alice.access_key).upper())
    assert result(body)["sessionName"]


def test_second_user_gets_its_own_user_id(client, alice, bob):
    assert result(login_body(client, "alice", alice.access_key))["userId"] == f"19x{alice.id}"
    assert result(login_body(client, "bob", bob.access_key))["userId"] == f"19x{bob.id}"
    assert alice.id != bob.id


# --- login: single-use tokens ----------------------------------------------------------------------


def test_token_is_single_use(client, alice, redis):
    token = challenge(client, "alice")["token"]
    first = result(login_with(client, token, alice.access_key))["sessionName"]
    before = snapshot(redis)
    error(login_with(client, token, alice.access_key), "INVALID_AUTH_TOKEN", BAD_TOKEN)
    assert snapshot(redis) == before
    assert alive(client, first)


def test_replay_refused_even_with_a_fresh_token_outstanding(client, alice):
    used = challenge(client, "alice")["token"]
    result(login_with(client, used, alice.access_key))
    fresh = challenge(client, "alice")["token"]
    error(login_with(client, used, alice.access_key), "INVALID_AUTH_TOKEN", BAD_TOKEN)
    assert result(login_with(client, fresh, alice.access_key))["sessionName"]


def test_a_login_hashes_only_the_tokens_no_login_used(client, alice, monkeypatch):
    """A user that logs in again and again keeps no spent token in its record: any proof hashes
    the unused tokens only, and a replay none (its proof's hash is found among the spent)."""
    from webservice.store import challenges

    for _ in range(5):
        used = challenge(client, "alice")["token"]
        result(login_with(client, used, alice.access_key))
    live = challenge(client, "alice")["token"]
    hashed = []
    original = challenges.login_proof
    monkeypatch.setattr(
        challenges, "login_proof", lambda token, key: hashed.append(token) or original(token, key)
    )

    error(login_with(client, used, alice.access_key), "INVALID_AUTH_TOKEN", BAD_TOKEN)
    assert hashed == []
    error(login_with(client, live, "not the key"), "INVALID_USER_CREDENTIALS")
    assert hashed == [live]
    hashed.clear()
    assert result(login_with(client, live, alice.access_key))["sessionName"]
    assert hashed == [live]


def test_a_replay_in_any_letter_case_or_padding_is_told_its_token_was_used(
    client, alice, gateway
):
    token = challenge(client, "alice")["token"]
    given = proof(token, alice.access_key)
    result(post(client, operation="login", username="alice", accessKey=given))
    for replay in (given.upper(), f" {given} "):
        error(
            post(client, operation="login", username="ALICE", accessKey=replay),
            "INVALID_AUTH_TOKEN",
            BAD_TOKEN,
        )
    assert not gateway.redis.keys("*login-failures*")


def test_several_outstanding_tokens_each_log_in_once(client, alice):
    tokens = [challenge(client, "alice")["token"] for _ in range(6)]
    random.Random(7).shuffle(tokens)
    sessions = [result(login_with(client, token, alice.access_key))["sessionName"] for token in tokens]
    assert len(set(sessions)) == 6
    assert all(alive(client, session) for session in sessions)
    for token in tokens:
        error(login_with(client, token, alice.access_key), "INVALID_AUTH_TOKEN", BAD_TOKEN)


@BOTH_WAYS
def test_outstanding_tokens_are_bounded_oldest_dropped(make_app, in_one_step):
    gateway, alice, client = with_alice(make_app, {"CHALLENGE_MAX_OUTSTANDING": 3})
    gateway.challenges.in_one_step = in_one_step
    tokens = []
    for _ in range(5):
        tokens.append(challenge(client, "alice")["token"])
        time.sleep(0.003)  # distinct expiries, so "oldest" is well defined
    fields = gateway.redis.hgetall(gateway.keys.user("alice"))
    kept = sorted(name[2:] for name in fields if name.startswith("t:"))
    assert kept == sorted(tokens[2:])
    for token in tokens[:2]:
        # A proof from a dropped token matches no live token: as in coreBOS, the server cannot
        # tell it from a wrong access key.
        error(login_with(client, token, alice.access_key), "INVALID_USER_CREDENTIALS")
    for token in tokens[2:]:
        assert result(login_with(client, token, alice.access_key))["sessionName"]


@BOTH_WAYS
def test_a_used_token_leaves_its_record_and_address_set_and_its_proof_is_kept_hashed(
    client, alice, gateway, in_one_step
):
    gateway.challenges.in_one_step = in_one_step
    token = challenge(client, "alice")["token"]
    record, spent = gateway.keys.user("alice"), gateway.keys.spent_challenges("alice")
    expiry = int(gateway.redis.hget(record, f"t:{token}").partition("|")[0])
    address_key = gateway.keys.challenges_of_address("127.0.0.1")
    assert gateway.redis.zcard(address_key) == 1
    given = proof(token, alice.access_key)
    result(post(client, operation="login", username="alice", accessKey=given))
    assert gateway.redis.hget(record, f"t:{token}") is None
    assert gateway.redis.zrange(spent, 0, -1, withscores=True) == [(hash_secret(given), expiry)]
    assert gateway.redis.pexpiretime(spent) == expiry
    assert not any(token in key or given in key for key in gateway.redis.keys("*"))
    assert gateway.redis.zcard(address_key) == 0
    # Still recognised as used: a replay is told so, and is not counted as a wrong key, with a
    # fresh token outstanding and without one.
    fresh = challenge(client, "alice")["token"]
    error(login_with(client, token, alice.access_key), "INVALID_AUTH_TOKEN", BAD_TOKEN)
    assert result(login_with(client, fresh, alice.access_key))["sessionName"]
    error(login_with(client, token, alice.access_key), "INVALID_AUTH_TOKEN", BAD_TOKEN)
    assert not gateway.redis.keys("*login-failures*")


def test_spent_tokens_take_no_room_in_the_caps_and_withdraw_nothing(make_app):
    """Logging in again and again while one login is slow: the record keeps the slow login's
    token only, and the caps never drop it for the tokens the others used."""
    gateway, alice, client = with_alice(make_app, {"CHALLENGE_MAX_OUTSTANDING": 3})
    slow = challenge(client, "alice")["token"]
    time.sleep(0.003)
    withdrawn = []
    original = gateway.logins.challenges._withdraw
    gateway.logins.challenges._withdraw = lambda dropped, untracked=None: (
        withdrawn.append(dropped),
        original(dropped, untracked),
    )
    for _ in range(6):
        token = challenge(client, "alice")["token"]
        time.sleep(0.003)
        assert result(login_with(client, token, alice.access_key))["sessionName"]
    assert withdrawn == []
    fields = gateway.redis.hgetall(gateway.keys.user("alice"))
    assert [name for name in fields if name.startswith("t:")] == [f"t:{slow}"]
    assert gateway.redis.zcard(gateway.keys.spent_challenges("alice")) == 6
    assert result(login_with(client, slow, alice.access_key))["sessionName"]
    # Unused tokens beyond the cap are dropped, oldest first, and withdrawn.
    fresh = []
    for _ in range(4):
        fresh.append(challenge(client, "alice")["token"])
        time.sleep(0.003)
    assert withdrawn == [[(fresh[0], "alice")]]


def test_spent_tokens_keep_the_newest_up_to_the_cap_per_user(make_app):
    gateway, alice, client = with_alice(
        make_app, {"CHALLENGE_MAX_OUTSTANDING": 2, "CHALLENGE_MAX_PER_USER": 3}
    )
    used = []
    for _ in range(5):
        used.append(challenge(client, "alice")["token"])
        time.sleep(0.003)  # distinct expiries, so "newest" is well defined
        assert result(login_with(client, used[-1], alice.access_key))["sessionName"]
    spent = gateway.keys.spent_challenges("alice")
    proofs = [hash_secret(proof(token, alice.access_key)) for token in used]
    assert gateway.redis.zrange(spent, 0, -1) == proofs[2:]
    for token in used[2:]:
        error(login_with(client, token, alice.access_key), "INVALID_AUTH_TOKEN", BAD_TOKEN)
    assert not gateway.redis.keys("*login-failures*")
    # A proof dropped from them is no longer known: as in coreBOS, a wrong proof (with a token
    # outstanding; without one, no live token).
    error(login_with(client, used[0], alice.access_key), "INVALID_AUTH_TOKEN", BAD_TOKEN)
    challenge(client, "alice")
    error(login_with(client, used[0], alice.access_key), "INVALID_USER_CREDENTIALS")


def test_an_expired_spent_proof_is_a_wrong_one_and_leaves_at_the_next_login(
    client, alice, gateway
):
    old = challenge(client, "alice")["token"]
    result(login_with(client, old, alice.access_key))
    spent = gateway.keys.spent_challenges("alice")
    old_proof = hash_secret(proof(old, alice.access_key))
    gateway.redis.zadd(spent, {old_proof: int(time.time() * 1000) - 1000})
    token = challenge(client, "alice")["token"]
    error(login_with(client, old, alice.access_key), "INVALID_USER_CREDENTIALS")
    result(login_with(client, token, alice.access_key))
    assert gateway.redis.zrange(spent, 0, -1) == [hash_secret(proof(token, alice.access_key))]


def test_a_record_with_a_token_marked_spent_by_an_earlier_version_still_logs_in(
    client, alice, gateway
):
    """Before spent tokens had a set of their own, a login marked its token in the record
    (``<expiry>:spent|<address>``); such a record, met while it has not expired, is read."""
    old = challenge(client, "alice")["token"]
    result(login_with(client, old, alice.access_key))
    record = gateway.keys.user("alice")
    expiry = int(time.time() * 1000) + 60_000
    gateway.redis.hset(record, f"t:{old}", f"{expiry}:spent|127.0.0.1")
    gateway.redis.delete(gateway.keys.spent_challenges("alice"))
    error(login_with(client, old, alice.access_key), "INVALID_AUTH_TOKEN", BAD_TOKEN)
    token = challenge(client, "alice")["token"]
    assert result(login_with(client, token, alice.access_key))["sessionName"]


def test_a_login_whose_user_was_deleted_meanwhile_does_not_recreate_its_record(
    client, alice, gateway
):
    token = challenge(client, "alice")["token"]
    record = gateway.keys.user("alice")
    spent = gateway.logins.challenges.spent(
        token, record, "1|127.0.0.1", "alice", proof_digest(proof(token, alice.access_key))
    )
    for script in spent.scripts:
        script.load(gateway.redis)
    gateway.redis.delete(record)
    pipe = gateway.redis.pipeline(transaction=False)
    spent.queue(pipe, None)
    assert pipe.execute() == [0, 1]
    assert not gateway.redis.exists(record)
    assert not gateway.redis.exists(gateway.keys.spent_challenges("alice"))


# --- login: expired tokens -----------------------------------------------------------------------


def _expire_token(gateway, username, token):
    """What time does to a token: its recorded expiry passes and its pending challenge vanishes."""
    past = int(time.time() * 1000) - 1000
    gateway.redis.hset(gateway.keys.user(username), f"t:{token}", past)
    gateway.redis.delete(gateway.keys.pending_challenge(family_id_for_challenge(token)))


def test_expired_token_is_refused(client, alice, gateway):
    token = challenge(client, "alice")["token"]
    _expire_token(gateway, "alice", token)
    error(login_with(client, token, alice.access_key), "INVALID_AUTH_TOKEN", BAD_TOKEN)


def test_expired_token_refused_while_another_is_live(client, alice, gateway):
    old = challenge(client, "alice")["token"]
    live = challenge(client, "alice")["token"]
    _expire_token(gateway, "alice", old)
    body = login_with(client, old, alice.access_key)
    assert body["success"] is False
    assert body["error"]["code"] in {"INVALID_AUTH_TOKEN", "INVALID_USER_CREDENTIALS"}
    assert result(login_with(client, live, alice.access_key))["sessionName"]


def test_token_whose_recorded_expiry_passed_is_refused(client, alice, gateway):
    token = challenge(client, "alice")["token"]
    gateway.redis.hset(gateway.keys.user("alice"), f"t:{token}", int(time.time() * 1000) - 1)
    error(login_with(client, token, alice.access_key), "INVALID_AUTH_TOKEN", BAD_TOKEN)


def test_token_without_pending_challenge_is_refused(client, alice, gateway):
    token = challenge(client, "alice")["token"]
    gateway.redis.delete(gateway.keys.pending_challenge(family_id_for_challenge(token)))
    error(login_with(client, token, alice.access_key), "INVALID_AUTH_TOKEN", BAD_TOKEN)
    assert gateway.redis.zcard(gateway.keys.user_families(alice.id)) == 0


def test_token_really_expires_with_a_tiny_ttl(make_app):
    app = make_app({"CHALLENGE_TTL": 0.15})
    alice = gateway_of(app).users.add("alice")
    client = app.test_client()
    token = challenge(client, "alice")["token"]
    time.sleep(0.3)
    error(login_with(client, token, alice.access_key), "INVALID_AUTH_TOKEN", BAD_TOKEN)


def test_expired_tokens_are_pruned_by_the_next_getchallenge(make_app):
    app = make_app({"CHALLENGE_TTL": 0.1})
    gateway = gateway_of(app)
    gateway.users.add("alice")
    client = app.test_client()
    old = challenge(client, "alice")["token"]
    time.sleep(0.2)
    new = challenge(client, "alice")["token"]
    fields = gateway.redis.hgetall(gateway.keys.user("alice"))
    assert f"t:{old}" not in fields and f"t:{new}" in fields


# --- login: the other errors, in coreBOS's order -------------------------------------------------


def test_login_unknown_user(client, alice, redis):
    token = challenge(client, "alice")["token"]
    before = snapshot(redis)
    error(login_with(client, token, alice.access_key, username="mallory"), "AUTHENTICATION_REQUIRED", USER_NOT_FOUND)
    assert snapshot(redis) == before


def test_login_without_any_token(client, alice, redis):
    before = snapshot(redis)
    error(login_with(client, "0" * 32, alice.access_key), "INVALID_AUTH_TOKEN", BAD_TOKEN)
    assert snapshot(redis) == before


def test_login_with_wrong_access_key(client, alice, redis):
    token = challenge(client, "alice")["token"]
    before = snapshot(redis)
    error(
        login_with(client, token, "not-the-key"),
        "INVALID_USER_CREDENTIALS",
        "Invalid username or password",
    )
    assert snapshot(redis) == before


@pytest.mark.parametrize("garbage", ["x", "0" * 32, "Z" * 32, "é" * 40, "a" * 5000])
def test_login_with_garbage_proof(client, alice, garbage):
    challenge(client, "alice")
    body = post(client, operation="login", username="alice", accessKey=garbage)
    error(body, "INVALID_USER_CREDENTIALS", "Invalid username or password")


def test_login_with_another_users_key(client, alice, bob):
    token = challenge(client, "alice")["token"]
    error(login_with(client, token, bob.access_key), "INVALID_USER_CREDENTIALS")


def test_login_of_inactive_user(client, alice, gateway, redis):
    gateway.users.set_active("alice", False)
    token = challenge(client, "alice")["token"]
    before = snapshot(redis)
    error(login_with(client, token, alice.access_key), "AUTHENTICATION_REQUIRED", "Given user is inactive")
    assert snapshot(redis) == before
    # With a wrong key the credentials are checked first (coreBOS order).
    error(login_with(client, token, "wrong"), "INVALID_USER_CREDENTIALS")


def test_login_of_user_without_access_key(client, alice, gateway):
    token = challenge(client, "alice")["token"]
    gateway.redis.hset(gateway.keys.user("alice"), "key", "")
    error(
        login_with(client, token, alice.access_key),
        "ACCESSKEY_UNDEFINED",
        "Access key for the user is undefined",
    )


@pytest.mark.parametrize(
    ("params", "missing"),
    [
        ({}, "username"),
        ({"accessKey": "abc"}, "username"),
        ({"username": "alice"}, "accessKey"),
        ({"username": "", "accessKey": "abc"}, "username"),
        ({"username": "alice", "accessKey": ""}, "accessKey"),
    ],
)
def test_login_missing_parameters(client, alice, params, missing):
    message = error(post(client, operation="login", **params), "MANDATORY_FIELDS_MISSING")
    assert missing in message


def test_login_parameter_name_is_case_sensitive(client, alice):
    """``accessKey`` has a capital K; ``accesskey`` is not it."""
    token = challenge(client, "alice")["token"]
    body = post(client, operation="login", username="alice", accesskey=proof(token, alice.access_key))
    assert "accessKey" in error(body, "MANDATORY_FIELDS_MISSING")


def test_failed_login_does_not_use_up_the_token(client, alice):
    token = challenge(client, "alice")["token"]
    error(login_with(client, token, "wrong"), "INVALID_USER_CREDENTIALS")
    assert result(login_with(client, token, alice.access_key))["sessionName"]


def test_login_indexes_the_family_under_the_user(client, alice, gateway):
    session_id = login(client, "alice", alice.access_key)
    family = session_id.split(".")[0]
    assert gateway.redis.zrange(gateway.keys.user_families(alice.id), 0, -1) == [family]
    assert gateway.redis.exists(gateway.keys.family(family))


def test_the_user_ids_a_login_flow_remembers_are_bounded(app, client, gateway, monkeypatch):
    """What lets a login read its user's families in its first round trip (where the script
    that opens one cannot keep the cap: here a host's receiver must hear of endings first) is
    kept for at most KNOWN_IDS names; past that it starts over, and logins go on working."""
    from webservice import events
    from webservice.auth import login as login_module

    events.family_ended.connect(lambda sender, **extra: None, sender=app, weak=False)
    monkeypatch.setattr(login_module, "KNOWN_IDS", 3)
    users = [gateway.users.add(f"user{n}") for n in range(7)]
    for user in users * 2:
        token = challenge(client, user.username)["token"]
        answer = login_with(client, token, user.access_key, username=user.username)
        assert result(answer)["sessionName"]
        assert 1 <= len(gateway.logins._known_ids) <= 3

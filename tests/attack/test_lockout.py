"""Nobody can lock a user out: an attacker from up to 16 addresses, without the access key,
cannot make the user's correct login (from its own address, after its own getchallenge) fail or
be refused, while guessing stays as slow as before (5 checked guesses per username per window).

Over real gunicorn behind one trusted proxy (WSGATE_TRUSTED_PROXIES=1), so that each request's
X-Forwarded-For names the client address it comes from."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterator

import pytest
import redis
import requests

from tests.attack.conftest import Gateway, serve_gateway

pytestmark = pytest.mark.e2e
ENDPOINT = "/webservice.php"
USER_ADDRESS = "198.51.100.7"
ATTACKERS = [f"203.0.113.{n}" for n in range(1, 17)]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    extra_env = {
        "WSGATE_TRUSTED_PROXIES": "1",
        # The flood of getchallenge is the attack: the rate limit would only slow it.
        "WSGATE_CHALLENGE_RATE_LIMIT": "0",
        "WSGATE_HIDE_UNKNOWN_USERS": "true",
    }
    with serve_gateway(tmp_path_factory.mktemp("lockout"), extra_env) as served:
        yield served


def call(gateway: Gateway, address: str, **params: str) -> dict:
    return requests.post(
        gateway.base_url + ENDPOINT, data=params, headers={"X-Forwarded-For": address}, timeout=10
    ).json()


def token_for(gateway: Gateway, address: str, name: str) -> str:
    return call(gateway, address, operation="getchallenge", username=name)["result"]["token"]


def login(gateway: Gateway, address: str, name: str, token: str, key: str) -> dict:
    proof = hashlib.md5((token + key).encode()).hexdigest()
    return call(gateway, address, operation="login", username=name, accessKey=proof)


def new_user(gateway: Gateway, name: str) -> str:
    return json.loads(gateway.flask("users", "add", name, "--json").stdout)["accessKey"]


def test_a_getchallenge_flood_cannot_push_out_the_users_token(gateway: Gateway) -> None:
    """The attack: the user asks for its token; then 16 addresses ask getchallenge for the user
    100 times each. Before, the per-user cap (32, oldest first) dropped the user's token, its
    login failed as a wrong key from the *user's* address, audited against it, and five of those
    locked it out. Now the user's login with its token works."""
    key = new_user(gateway, "flooded")
    token = token_for(gateway, USER_ADDRESS, "flooded")
    for attacker in ATTACKERS:
        for _ in range(100):
            token_for(gateway, attacker, "flooded")
    answer = login(gateway, USER_ADDRESS, "flooded", token, key)
    assert answer["success"], answer


def test_wrong_logins_from_16_addresses_cannot_lock_the_user_out(gateway: Gateway) -> None:
    """The attack: 16 addresses send wrong logins for the username, again and again. Before,
    five of them locked the user out of correct logins (API and web) for 15 minutes, renewable
    forever. Now the user's correct login from its own address works, while the attackers
    together get no more than 5 guesses checked in the window."""
    key = new_user(gateway, "targeted")
    assert login(gateway, USER_ADDRESS, "targeted", token_for(gateway, USER_ADDRESS, "targeted"), key)["success"]
    outcomes: Counter[str] = Counter()
    for _round in range(3):
        for attacker in ATTACKERS:
            answer = login(gateway, attacker, "targeted", token_for(gateway, attacker, "targeted"), "wrong")
            outcomes[answer["error"]["code"]] += 1
    assert outcomes["INVALID_USER_CREDENTIALS"] <= 5, outcomes
    assert outcomes["TOO_MANY_REQUESTS"] >= len(ATTACKERS) * 3 - 5, outcomes
    for _ in range(3):
        answer = login(gateway, USER_ADDRESS, "targeted", token_for(gateway, USER_ADDRESS, "targeted"), key)
        assert answer["success"], answer


def test_the_users_own_wrong_logins_still_limit_its_address(gateway: Gateway) -> None:
    """The user's own address is not a free pass for guessing: five wrong logins from it are
    refused there too (its own counter), and nobody else is affected."""
    key = new_user(gateway, "typist")
    assert login(gateway, USER_ADDRESS, "typist", token_for(gateway, USER_ADDRESS, "typist"), key)["success"]
    for _ in range(5):
        login(gateway, USER_ADDRESS, "typist", token_for(gateway, USER_ADDRESS, "typist"), "wrong")
    limited = login(gateway, USER_ADDRESS, "typist", token_for(gateway, USER_ADDRESS, "typist"), key)
    assert limited["error"]["code"] == "TOO_MANY_REQUESTS", limited


def test_a_captured_proof_replayed_cannot_lock_the_user_out(gateway: Gateway) -> None:
    """The attack: someone who saw one of the user's logins (its username and proof: a logging
    proxy, a leaked access log) replays the proof, from the user's address and from 16 others,
    again and again. Each replay is told its token was used, none counts as a failed login, so
    the user's next logins work; and Redis keeps no trace of the proof in clear."""
    # Addresses of their own: the other tests' addresses are over their failure limits.
    user_address, replayers = "198.51.100.8", [f"192.0.2.{n}" for n in range(1, 17)]
    key = new_user(gateway, "observed")
    token = token_for(gateway, user_address, "observed")
    proof = hashlib.md5((token + key).encode()).hexdigest()
    seen = call(gateway, user_address, operation="login", username="observed", accessKey=proof)
    assert seen["success"], seen
    codes: Counter[str] = Counter()
    for address in [user_address, *replayers]:
        for _ in range(6):
            answer = call(gateway, address, operation="login", username="observed", accessKey=proof)
            codes[answer["error"]["code"]] += 1
    assert codes == Counter({"INVALID_AUTH_TOKEN": 6 * (1 + len(replayers))}), codes
    for address in (user_address, replayers[0]):
        answer = login(gateway, address, "observed", token_for(gateway, address, "observed"), key)
        assert answer["success"], answer
    stored = redis.Redis.from_url(gateway.redis_url, decode_responses=True)
    try:
        for name in stored.scan_iter("*"):
            kind = stored.type(name)
            if kind == "hash":
                values = [*stored.hgetall(name).items()]
            elif kind == "zset":
                values = stored.zrange(name, 0, -1)
            elif kind == "string":
                values = [stored.get(name)]
            else:
                continue
            assert proof not in f"{name} {values}", name
    finally:
        stored.close()

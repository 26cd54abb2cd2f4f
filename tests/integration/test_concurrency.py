"""Concurrent logins against a real redis-server: many tokens at once, each token used once."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from tests.integration.conftest import (
    USERNAME,
    client_of,
    error_code,
    gateway_of,
    hear_endings,
    run_threads,
)
from tests.wsclient import proof

pytestmark = pytest.mark.integration


def test_twenty_concurrent_logins_of_one_user_all_succeed(real_app, alice):
    count = 20
    all_challenged = threading.Barrier(count, timeout=30)

    def log_in(_: int) -> tuple[str, dict]:
        ws = client_of(real_app)
        challenge = ws.call("getchallenge", "GET", username=USERNAME)
        assert challenge["success"], challenge
        token = challenge["result"]["token"]
        # Every thread holds its own outstanding token before any of them logs in.
        all_challenged.wait()
        return token, ws.call("login", username=USERNAME, accessKey=proof(token, alice.access_key))

    results = run_threads(count, log_in)
    tokens = [token for token, _ in results]
    answers = [answer for _, answer in results]
    assert len(set(tokens)) == count, "every getchallenge hands out its own token"
    assert [error_code(answer) for answer in answers] == [None] * count, answers
    sessions = {answer["result"]["sessionName"] for answer in answers}
    assert len(sessions) == count

    ws = client_of(real_app)
    for session in sessions:
        ws.session_name = session
        assert ws.authed("listtypes")["success"]


def test_one_token_raced_by_ten_logins_yields_exactly_one_session(real_app, alice):
    ws = client_of(real_app)
    token = ws.call("getchallenge", "GET", username=USERNAME)["result"]["token"]
    access_proof = proof(token, alice.access_key)
    count = 10
    start = threading.Barrier(count, timeout=30)

    def log_in(_: int) -> dict:
        racer = client_of(real_app)
        start.wait()
        return racer.call("login", username=USERNAME, accessKey=access_proof)

    answers = run_threads(count, log_in)
    codes = Counter(error_code(answer) for answer in answers)
    assert codes == Counter({None: 1, "INVALID_AUTH_TOKEN": count - 1}), answers
    winner = next(answer for answer in answers if answer["success"])
    ws.session_name = winner["result"]["sessionName"]
    assert ws.authed("listtypes")["success"]
    # The token stays spent.
    assert error_code(ws.call("login", username=USERNAME, accessKey=access_proof)) == (
        "INVALID_AUTH_TOKEN"
    )
    # The losers left the winner findable under its user: disabling the user ends it.
    result = real_app.test_cli_runner().invoke(args=["users", "disable", USERNAME])
    assert result.exit_code == 0, result.output
    assert error_code(ws.authed("listtypes")) == "AUTHENTICATION_REQUIRED"


def test_a_replayed_login_does_not_hide_the_session_from_end_all_for_user(real_app, alice):
    """Disabling a user must end every session of it, also one whose token was replayed.

    Every login with one token names the same family id (derived from the token), so the loser
    of a replay must not take the winner's entry out of the user's index of families.
    """
    ws = client_of(real_app)
    token = ws.call("getchallenge", "GET", username=USERNAME)["result"]["token"]
    access_proof = proof(token, alice.access_key)
    login = ws.call("login", username=USERNAME, accessKey=access_proof)
    ws.session_name = login["result"]["sessionName"]
    replay = ws.call("login", username=USERNAME, accessKey=access_proof)
    assert error_code(replay) == "INVALID_AUTH_TOKEN"
    assert ws.authed("listtypes")["success"]

    result = real_app.test_cli_runner().invoke(args=["users", "disable", USERNAME])
    assert result.exit_code == 0, result.output
    assert error_code(ws.authed("listtypes")) == "AUTHENTICATION_REQUIRED"


@pytest.mark.parametrize("host_hears_first", [False, True], ids=["cap in script", "host hears"])
def test_logins_of_a_user_at_its_cap_at_the_same_moment_each_end_one_other_family(
    make_app, real_redis, host_hears_first
):
    """The workers of one integration log in as one user at the same moment, the user at
    MAX_FAMILIES_PER_USER. On a single Redis the script that opens each family picks the one it
    ends: each login ends exactly one other family, the oldest left, so the user keeps exactly
    the cap, the newest, and every ending is announced and audited once. A host's receiver that
    must hear first makes the logins read the oldest and end it riding, and claim what is still
    beyond the cap in the same round trip (family_endings.ExcessClaim): two logins that read the
    same oldest may both end it, but the claims make up for exactly that, so the user keeps
    exactly the cap there too, the newest, and the endings announced count each family once.
    (Before the claims, such logins each ended as many as they had counted over the cap, and
    left the user 2 or fewer of the 4.)"""
    in_script = logins_racing_at_the_cap(make_app, real_redis, after_the_fact=not host_hears_first)
    assert in_script is not host_hears_first


def logins_racing_at_the_cap(make_app, real_redis, after_the_fact: bool) -> bool:
    """12 logins of one user over three apps at a cap of 4 (see the test above): exactly the
    newest 4 are left, and the endings announced count each family once (where the open script
    keeps the cap: one each). Answers whether it did (Endings.one_step)."""
    cap, count = 4, 12
    apps = [make_app(MAX_FAMILIES_PER_USER=cap) for _ in range(3)]  # three "workers"
    heard: list[int] = []

    def record(event, round_trip) -> None:  # type: ignore[no-untyped-def]
        heard.append(round_trip.count)

    for app in apps:
        hear_endings(app, record, after_the_fact=after_the_fact)
    gateway = gateway_of(apps[0])
    access_key = gateway.users.add(USERNAME).access_key
    user_id = gateway.users.get(USERNAME).id
    index = gateway.keys.user_families(user_id)

    def log_in(app) -> str:
        ws = client_of(app)
        token = ws.call("getchallenge", "GET", username=USERNAME)["result"]["token"]
        answer = ws.call("login", username=USERNAME, accessKey=proof(token, access_key))
        assert answer["success"], answer
        return answer["result"]["sessionName"]

    first = [log_in(apps[0]) for _ in range(cap)]
    heard.clear()
    all_challenged = threading.Barrier(count, timeout=30)

    def racing(i: int) -> str:
        ws = client_of(apps[i % len(apps)])
        token = ws.call("getchallenge", "GET", username=USERNAME)["result"]["token"]
        all_challenged.wait()
        answer = ws.call("login", username=USERNAME, accessKey=proof(token, access_key))
        assert answer["success"], answer
        return answer["result"]["sessionName"]

    racers = run_threads(count, racing)
    live = [
        session
        for session in first + racers
        if real_redis.exists(gateway.keys.family(session.split(".")[0]))
    ]
    assert set(real_redis.zrange(index, 0, -1)) == {session.split(".")[0] for session in live}
    assert len(live) == cap
    assert set(first).isdisjoint(live), "the oldest end first"
    with apps[0].app_context():
        in_script = gateway.logins.endings.one_step()
    if not in_script:
        assert sum(heard) == count, "each family ended is counted by one announcement"
        return in_script
    assert heard == [1] * count, "each login ended one family, announced once"
    entries, _ = gateway.audit.tail(200)
    assert len([entry for entry in entries if entry.event.reason == "family_cap"]) == count
    return in_script

"""Concurrent logins against a real redis-server: many tokens at once, each token used once."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from tests.integration.conftest import (
    USERNAME,
    client_of,
    error_code,
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

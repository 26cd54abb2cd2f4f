"""Usernames are case-insensitive, as in coreBOS: one normalisation (keys.same_user) for the
directory, the challenge tokens, the failure limits and the audit trail's filter."""

from __future__ import annotations

import pytest

from tests.unit.conftest import gateway_of
from tests.unit.support import challenge, error, get, login, post, proof, result
from webservice.store.users import UserError


@pytest.fixture
def app(make_app):
    return make_app({"HIDE_UNKNOWN_USERS": False})


def test_any_case_finds_the_user_and_keeps_its_name(app):
    user = gateway_of(app).users.add("Alice")
    client = app.test_client()
    for name in ("alice", "ALICE", "aLiCe", "Alice"):
        session = login(client, name, user.access_key)
        listed = result(get(client, operation="listsessions", sessionName=session))
        assert listed and all(view["handle"] for view in listed)
    assert gateway_of(app).users.get("ALICE").username == "Alice"


def test_two_users_differing_only_in_case_cannot_be_made(app):
    gateway_of(app).users.add("bob")
    with pytest.raises(UserError, match="already exists"):
        gateway_of(app).users.add("BOB")


def test_no_case_variant_gets_around_a_failure_limit(app):
    user = gateway_of(app).users.add("carol")
    client = app.test_client()
    for name in ("carol", "CAROL", "Carol", "cArol", "caRol"):
        token = challenge(client, name)["token"]
        error(post(client, operation="login", username=name, accessKey=proof(token, "wrong")),
              "INVALID_USER_CREDENTIALS")  # fmt: skip
    token = challenge(client, "CaRoL")["token"]
    answer = post(client, operation="login", username="CaRoL", accessKey=proof(token, user.access_key))
    error(answer, "TOO_MANY_REQUESTS")

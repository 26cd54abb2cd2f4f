"""The settings of confirmed revocations (REDIS_WAIT_REPLICAS): refused when they cannot work (the
app does not start with them); off by default, when nothing is confirmed and no ended family is
kept (the behaviour, and the round trips, of before)."""

from __future__ import annotations

import pytest

from tests.unit.conftest import gateway_of
from tests.wsclient import proof
from webservice import settings
from webservice.store.confirmation import Replicas
from webservice.store.keys import RedisKeys


def policy(**changes) -> Replicas:
    return Replicas.of({**settings.defaults(), **changes}, RedisKeys())


def test_off_by_default():
    replicas = policy()
    assert (replicas.enabled, replicas.of_change("Logout", ["f"])) == (False, None)


def test_on_it_confirms_the_families_of_a_change():
    replicas = policy(REDIS_WAIT_REPLICAS=2, REDIS_WAIT_TIMEOUT=250, REDIS_WAIT_RETRY_GRACE=30)
    confirmation = replicas.of_change("Logout", ["a", "b", "a"])
    assert confirmation is not None
    assert (replicas.count, replicas.timeout_ms, replicas.grace_ms) == (2, 250, 30_000)
    assert (confirmation.what, confirmation.families) == ("Logout", ("a", "b"))


@pytest.mark.parametrize(
    "changes",
    [
        {"REDIS_WAIT_REPLICAS": -1},
        # WAIT 0 waits for ever.
        {"REDIS_WAIT_REPLICAS": 1, "REDIS_WAIT_TIMEOUT": 0},
        # Not shorter than the socket timeout: an unconfirmed logout would look like a hung Redis.
        {"REDIS_WAIT_REPLICAS": 1, "REDIS_WAIT_TIMEOUT": 2000, "REDIS_SOCKET_TIMEOUT": 2.0},
        {"REDIS_WAIT_REPLICAS": 1, "REDIS_WAIT_RETRY_GRACE": 0.5},
    ],
)
def test_settings_that_cannot_work_are_refused(make_app, changes):
    with pytest.raises(ValueError):
        policy(**changes)
    with pytest.raises(ValueError):
        make_app(changes)


def test_without_confirmation_an_ended_family_leaves_nothing_behind(make_app):
    app = make_app()
    gateway = gateway_of(app)
    user = gateway.users.add("alice")
    ws = app.test_client()
    challenge = ws.get(f"/webservice.php?operation=getchallenge&username={user.username}").json
    login = ws.post(
        "/webservice.php",
        data={
            "operation": "login",
            "username": user.username,
            "accessKey": proof(challenge["result"]["token"], user.access_key),
        },
    ).json
    session = login["result"]["sessionName"]
    assert ws.post("/webservice.php", data={"operation": "logout", "sessionName": session}).json[
        "success"
    ]
    family = session.split(".")[0]
    assert not gateway.redis.exists(gateway.keys.ended_family(family))
    assert not gateway.redis.exists(gateway.keys.confirmation(family))


def test_the_standalone_server_reads_them_from_the_environment(make_app, monkeypatch):
    monkeypatch.setenv("WSGATE_REDIS_WAIT_REPLICAS", "1")
    monkeypatch.setenv("WSGATE_REDIS_WAIT_TIMEOUT", "250")
    monkeypatch.setenv("WSGATE_REDIS_WAIT_RETRY_GRACE", "60")
    replicas = gateway_of(make_app()).sessions.replicas
    assert (replicas.count, replicas.timeout_ms, replicas.grace_ms) == (1, 250, 60_000)

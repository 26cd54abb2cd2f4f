"""``WSGate`` as a Flask extension: one object for several apps, settings in ``app.config``,
opt-in probes and metrics, and the session events a host can subscribe to."""

from __future__ import annotations

import hashlib
from typing import Any

import fakeredis
from flask import Flask

from webservice import ApiUser, WSGate, events
from webservice.api.gateway import EXTENSION_KEY

ALICE = ApiUser(7, "alice", "aLiCeAcCeSsKeY07")


def host(gate: WSGate, **config: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(SECRET_KEY="test", **config)
    gate.init_app(app)
    return app


def api_login(app: Flask) -> str:
    client = app.test_client()
    token = client.get("/webservice.php?operation=getchallenge&username=alice").get_json()
    proof = hashlib.md5((token["result"]["token"] + ALICE.access_key).encode()).hexdigest()
    answer = client.post(
        "/webservice.php", data={"operation": "login", "username": "alice", "accessKey": proof}
    ).get_json()
    assert answer["success"], answer
    return answer["result"]["sessionName"]


def works(app: Flask, session_name: str) -> bool:
    answer = app.test_client().get(
        "/webservice.php", query_string={"operation": "listtypes", "sessionName": session_name}
    )
    return answer.get_json()["success"]


def test_one_extension_serves_several_apps_apart() -> None:
    """Each app has its own gateway and settings (here: its own key prefix in one Redis); the
    extension object holds no app."""
    gate = WSGate(redis_client=fakeredis.FakeRedis(decode_responses=True))
    gate.api_user_loader(lambda name: ALICE if name == "alice" else None)
    first = host(gate, WSGATE_REDIS_KEY_PREFIX="one")
    second = host(gate, WSGATE_REDIS_KEY_PREFIX="two")
    assert not hasattr(gate, "app")
    assert first.extensions[EXTENSION_KEY] is not second.extensions[EXTENSION_KEY]
    assert first.extensions[EXTENSION_KEY].settings["REDIS_KEY_PREFIX"] == "one"
    session_name = api_login(first)
    assert works(first, session_name)
    assert not works(second, session_name), "a session of one app is live in the other"


def test_settings_come_from_app_config_with_defaults_set_aside() -> None:
    gate = WSGate(redis_client=fakeredis.FakeRedis(decode_responses=True))
    app = host(gate, WSGATE_SESSION_IDLE_TIMEOUT=60)
    assert app.config["WSGATE_SESSION_IDLE_TIMEOUT"] == 60
    assert app.config["WSGATE_SESSION_ABSOLUTE_TIMEOUT"] == 86400
    assert app.extensions[EXTENSION_KEY].settings["SESSION_IDLE_TIMEOUT"] == 60


def test_probes_and_metrics_are_opt_in_for_a_host() -> None:
    plain = host(WSGate(redis_client=fakeredis.FakeRedis(decode_responses=True)))
    for path in ("/healthz", "/readyz", "/metrics"):
        assert plain.test_client().get(path).status_code == 404, path
    client = fakeredis.FakeRedis(decode_responses=True)
    served = host(
        WSGate(redis_client=client), WSGATE_PROBES_ENABLED=True, WSGATE_METRICS_ENABLED=True
    )
    assert served.test_client().get("/healthz").get_json() == {"status": "ok"}
    assert served.test_client().get("/readyz").status_code == 200
    assert b"wsgate_requests_total" in served.test_client().get("/metrics").data


def test_a_host_hears_the_events_of_its_own_app_only() -> None:
    """login_succeeded and family_ended reach receivers connected for that app, with the event;
    on_done callbacks run once the change is made."""
    gate = WSGate(redis_client=fakeredis.FakeRedis(decode_responses=True))
    gate.api_user_loader(lambda name: ALICE if name == "alice" else None)
    app = host(gate)
    other = host(WSGate(redis_client=fakeredis.FakeRedis(decode_responses=True)))
    heard: list[tuple[str, str, str]] = []

    def on_login(sender: Flask, event: events.SessionEvent, round_trip: events.RoundTrip, **extra: Any) -> None:
        round_trip.on_done(lambda: heard.append(("login", event.user, event.via)))

    def on_end(sender: Flask, event: events.SessionEvent, round_trip: events.RoundTrip, **extra: Any) -> None:
        heard.append(("ending", event.reason, event.handle))
        round_trip.on_done(lambda: heard.append(("ended", event.reason, event.handle)))

    events.login_succeeded.connect(on_login, sender=app)
    events.family_ended.connect(on_end, sender=app)
    events.family_ended.connect(lambda *a, **k: heard.append(("other app", "", "")), sender=other)
    try:
        session_name = api_login(app)
        handle = session_name.split(".")[0]
        answer = app.test_client().post(
            "/webservice.php", data={"operation": "logout", "sessionName": session_name}
        ).get_json()
        assert answer["success"], answer
    finally:
        events.login_succeeded.disconnect(on_login, sender=app)
        events.family_ended.disconnect(on_end, sender=app)
    assert heard[0] == ("login", "alice", "api")
    assert [entry[:2] for entry in heard[1:]] == [("ending", "logout"), ("ended", "logout")]
    assert heard[1][2].startswith(handle + ":")

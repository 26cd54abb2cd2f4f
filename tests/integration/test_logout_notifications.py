"""Logout notifications on a real redis-server, with a real receiver over HTTP: what the outbox
costs a logout, how a delivery process answers each kind of answer, the operators' commands, key
rotation, and a host app's ``logout_user``. The receiver verifies the tokens against the JWKS the
app serves over HTTP (a werkzeug server in a thread). End to end under gunicorn, with every kind
of ending and real delivery processes: tests/e2e/test_logout_notifications.py."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from flask import Flask
from werkzeug.serving import make_server

from tests.conftest import TEST_SETTINGS
from tests.host.hostapp import PASSWORDS, create_host_app
from tests.integration.conftest import USERNAME, Tally, client_of, counting_client, gateway_of
from tests.logout_receiver import LogoutReceiver, TokenVerifier
from tests.wsclient import WebServiceClient
from webservice.notifications.delivery import Delivery
from webservice.notifications.key_files import KeyFileError
from webservice.notifications.tokens import LogoutTokens
from webservice.standalone import create_app
from webservice.standalone.redis_server import free_port
from webservice.store.outbox import Notice
from webservice.store.signing_keys import SigningKeys

pytestmark = pytest.mark.integration

FAST_RETRIES = {"LOGOUT_RETRY_INITIAL": 0.1, "LOGOUT_RETRY_MAX": 0.3, "LOGOUT_DELIVERY_TIMEOUT": 1}


@pytest.fixture
def receiver() -> Iterator[LogoutReceiver]:
    started = LogoutReceiver(free_port()).start()
    yield started
    started.stop()


@contextmanager
def served(app: Flask) -> Iterator[str]:
    """``app`` over HTTP on a free loopback port; yields its base URL."""
    server = make_server("127.0.0.1", free_port(), app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


@contextmanager
def delivering(app: Flask) -> Iterator[None]:
    """A delivery process's loop for ``app``, in a thread."""
    gateway = gateway_of(app)
    settings = gateway.notifications
    tokens = LogoutTokens(gateway.signing_keys, settings.issuer, settings.token_ttl)
    delivery = Delivery(gateway.outbox, tokens, settings, f"test-{free_port()}")
    stop = threading.Event()
    thread = threading.Thread(target=delivery.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)


def wait_until(check: Callable[[], Any], timeout: float = 10, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what or check}"
        time.sleep(0.05)
    return found


@pytest.fixture
def notifying_app(make_app, receiver: LogoutReceiver) -> Callable[..., Flask]:
    def build(**settings: Any) -> Flask:
        return make_app(
            LOGOUT_RECEIVERS=[{"url": receiver.url, "audience": "rp"}],
            LOGOUT_ISSUER="https://gw.example",
            **{**FAST_RETRIES, **settings},
        )

    return build


def log_in_and_out(app: Flask, access_key: str) -> str:
    """An API login logged out; answers its family id."""
    client = client_of(app)
    assert client.login(USERNAME, access_key)["success"]
    family = client.session_name.partition(".")[0]
    assert client.authed("logout")["success"]
    return family


def test_without_receivers_nothing_is_written_and_no_keys_are_published(real_app, alice, real_redis):
    log_in_and_out(real_app, alice.access_key)
    keys = gateway_of(real_app).keys
    assert real_redis.exists(keys.logout_outbox(), keys.logout_signing_keys()) == 0
    assert real_app.test_client().get("/.well-known/jwks.json").status_code == 404


def test_the_notifications_ride_in_the_logouts_own_round_trips(redis_server, real_redis, receiver):
    """Two receivers: two outbox entries, written in the round trips a logout makes anyway."""
    tally = Tally()
    app = create_app(
        {
            **TEST_SETTINGS,
            "REDIS_URL": redis_server.url,
            "LOGOUT_RECEIVERS": [receiver.url, {"url": receiver.url + "?second", "audience": "b"}],
            "LOGOUT_ISSUER": "https://gw.example",
        },
        redis_client=counting_client(redis_server, tally),
    )
    access_key = gateway_of(app).users.add(USERNAME).access_key
    client = client_of(app)
    assert client.login(USERNAME, access_key)["success"]
    assert client.authed("listtypes")["success"]  # loads the session check's script, if needed
    before = tally.round_trips
    assert client.authed("logout")["success"]
    # Their receiver hears of the ending before it is made: the general two round trips.
    assert tally.round_trips - before == 2
    entries = gateway_of(app).outbox.undelivered()
    family = client.session_name.partition(".")[0]
    assert [(e.notice.sid, e.notice.aud, e.notice.reason) for e in entries] == [
        (family, receiver.url, "logout"),
        (family, "b", "logout"),
    ]
    assert {e.notice.sub for e in entries} == {f"19x{gateway_of(app).users.get(USERNAME).id}"}
    listed = app.test_cli_runner().invoke(args=["notifications", "list", "--json"])
    rows = [json.loads(line) for line in listed.output.splitlines()]
    assert [(row["id"], row["sid"], row["reason"]) for row in rows] == [
        (entry.id, family, "logout") for entry in entries
    ]
    plain = app.test_cli_runner().invoke(args=["notifications", "list"]).output
    assert plain.count(f"sid={family}") == 2 and receiver.url in plain


def test_a_4xx_is_given_up_at_once_and_5xx_and_429_are_tried_again(notifying_app, receiver):
    app = notifying_app()
    outbox = gateway_of(app).outbox
    access_key = gateway_of(app).users.add(USERNAME).access_key
    with served(app) as base_url, delivering(app):
        verifier = TokenVerifier(base_url, "https://gw.example", "rp")
        receiver.mode = 400
        refused = log_in_and_out(app, access_key)
        [failed] = wait_until(outbox.failed, what="the refused notification in the failed list")
        assert (failed.notice.sid, failed.why) == (refused, "HTTP 400 after 1 tries")
        assert len(receiver.arrivals) == 1

        receiver.mode = 503
        flaky = log_in_and_out(app, access_key)
        wait_until(lambda: len(receiver.arrivals) >= 3, what="two tries answered 503")
        receiver.mode = 429
        wait_until(lambda: len(receiver.arrivals) >= 5, what="two tries answered 429")
        receiver.mode = "ok"
        [received] = receiver.wait_for(1, timeout=5)
        assert verifier.verify(received.token)["sid"] == flaky
        wait_until(lambda: not outbox.undelivered(), what="the outbox to empty")
        assert [entry.notice.sid for entry in outbox.failed()] == [refused]
        stats = outbox.stats()
        assert (stats.queued, stats.delivered, stats.failed) == (0, 1, 1)


def test_given_up_after_its_age_then_retried_by_an_operator(notifying_app, receiver):
    app = notifying_app(LOGOUT_GIVE_UP_AFTER=1)
    gateway = gateway_of(app)
    access_key = gateway.users.add(USERNAME).access_key
    cli = app.test_cli_runner()
    receiver.mode = 503
    with served(app) as base_url, delivering(app):
        family = log_in_and_out(app, access_key)
        [failed] = wait_until(gateway.outbox.failed, what="the notification to be given up on")
        assert failed.why.startswith("HTTP 503 after "), failed.why
        tries = int(failed.why.split()[3])
        assert 2 <= tries <= len(receiver.arrivals)
        listed = cli.invoke(args=["notifications", "list", "--failed", "--json"])
        assert listed.exit_code == 0, listed.output
        [row] = [json.loads(line) for line in listed.output.splitlines()]
        assert (row["id"], row["sid"], row["why"]) == (failed.id, family, failed.why)

        receiver.mode = "ok"
        again = cli.invoke(args=["notifications", "retry", failed.id])
        assert again.exit_code == 0 and "queued again" in again.output, again.output
        [received] = receiver.wait_for(1, timeout=5)
        claims = TokenVerifier(base_url, "https://gw.example", "rp").verify(received.token)
        assert claims["sid"] == family
    assert gateway.outbox.failed() == []
    missing = cli.invoke(args=["notifications", "retry", failed.id])
    assert missing.exit_code == 1 and "no failed notification" in missing.output


def test_a_rotated_key_signs_at_once_and_the_old_one_stays_published_for_a_while(
    notifying_app, real_redis
):
    app = notifying_app()
    gateway = gateway_of(app)
    keys = SigningKeys(gateway.redis, gateway.keys, keep_seconds=0.5)
    first = keys.current().kid
    jwks = app.test_client().get("/.well-known/jwks.json")
    assert jwks.headers["Cache-Control"].startswith("public, max-age=")
    assert [key["kid"] for key in jwks.get_json()["keys"]] == [first]
    assert set(jwks.get_json()["keys"][0]) == {"kty", "crv", "x", "y", "kid", "use", "alg"}

    rotated = app.test_cli_runner().invoke(args=["notifications", "rotate-key"])
    assert rotated.exit_code == 0 and f"(replaces {first})" in rotated.output, rotated.output
    published = [key["kid"] for key in keys.published()]
    second = published[0]
    assert published == [second, first]
    tokens = LogoutTokens(SigningKeys(gateway.redis, gateway.keys, 0.5), "https://gw.example", 120)
    signed = tokens.sign(Notice("fam", "19x1", "", "logout", "http://rp", "rp"))
    assert jwt.get_unverified_header(signed)["kid"] == second

    time.sleep(0.6)
    assert [key["kid"] for key in keys.published()] == [second]
    third, replaced = keys.rotate()
    assert replaced == second
    stored = real_redis.hkeys(gateway.keys.logout_signing_keys())
    assert f"k:{first}" not in stored and f"k:{second}" in stored and f"k:{third}" in stored


def test_a_host_apps_logout_user_sends_one_token(redis_server, real_redis, receiver):
    """Flask-Login's logout_user ends the family (its web login and the API session that
    extendsession linked to it): one token, for that family, with alice's wire userId."""
    app = create_host_app(
        redis_url=redis_server.url,
        config={
            "TESTING": True,
            "WSGATE_LOGOUT_RECEIVERS": [receiver.url],
            "WSGATE_LOGOUT_ISSUER": "https://host.example",
        },
    )
    browser = app.test_client()
    response = browser.post("/login", data={"username": "alice", "password": PASSWORDS["alice"]})
    assert response.status_code == 302
    extended = browser.post(
        "/webservice.php", data={"operation": "extendsession"}, headers={"Origin": "http://localhost"}
    ).get_json()
    assert extended["success"], extended
    family = extended["result"]["sessionName"].partition(".")[0]
    assert browser.post("/logout").status_code == 302
    with served(app) as base_url, delivering(app):
        [received] = receiver.wait_for(1, timeout=5)
        verifier = TokenVerifier(base_url, "https://host.example", receiver.url)
        claims = verifier.verify(received.token)
        time.sleep(0.3)  # room for a second token to show up
    assert (claims["sid"], claims["sub"]) == (family, "19x7")
    assert len(receiver.tokens()) == 1


def test_an_idle_timeout_noticed_by_a_request_is_notified(notifying_app, receiver):
    app = notifying_app(SESSION_IDLE_TIMEOUT=1)
    gateway = gateway_of(app)
    access_key = gateway.users.add(USERNAME).access_key
    client: WebServiceClient = client_of(app)
    assert client.login(USERNAME, access_key)["success"]
    family = client.session_name.partition(".")[0]
    time.sleep(1.2)
    assert client.authed("listtypes")["error"]["code"] == "AUTHENTICATION_REQUIRED"
    [entry] = gateway.outbox.undelivered()
    assert (entry.notice.sid, entry.notice.reason) == (family, "idle_timeout")
    # Only once: the family is gone now.
    assert client.authed("listtypes")["success"] is False
    assert len(gateway.outbox.undelivered()) == 1
    with served(app) as base_url, delivering(app):
        [received] = receiver.wait_for(1, timeout=5)
        assert TokenVerifier(base_url, "https://gw.example", "rp").verify(received.token)[
            "sid"
        ] == family


def test_the_jwks_answers_503_while_redis_is_down(receiver):
    """A host app (no error handler of its own for Redis): a clear 503, no traceback."""
    app = create_host_app(
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        config={"TESTING": True, "WSGATE_LOGOUT_RECEIVERS": [receiver.url]},
    )
    answer = app.test_client().get("/.well-known/jwks.json")
    assert answer.status_code == 503
    assert answer.get_json() == {"error": "temporarily unavailable"}
    assert answer.headers["Retry-After"] == "1"


def test_linked_api_sessions_end_with_their_idle_web_login_while_its_record_is_kept(
    redis_server, real_redis, receiver
):
    """With notifications on, a family's record outlives its timeouts (to be noticed): an API
    session that extendsession linked to a web login that has idled out must not live on in it,
    however busy; its next call ends the family and notifies it."""
    app = create_host_app(
        redis_url=redis_server.url,
        config={
            "TESTING": True,
            "WSGATE_LOGOUT_RECEIVERS": [receiver.url],
            "WSGATE_SESSION_IDLE_TIMEOUT": 1,
        },
    )
    browser = app.test_client()
    assert browser.post(
        "/login", data={"username": "alice", "password": PASSWORDS["alice"]}
    ).status_code == 302
    extended = browser.post(
        "/webservice.php", data={"operation": "extendsession"}, headers={"Origin": "http://localhost"}
    ).get_json()
    linked = extended["result"]["sessionName"]
    api = app.test_client()  # no cookie: the web login is left alone

    def listtypes() -> dict:
        return api.post("/webservice.php", data={"operation": "listtypes", "sessionName": linked}).get_json()

    started = time.monotonic()
    while time.monotonic() - started < 0.8:
        assert listtypes()["success"]
        time.sleep(0.2)
    time.sleep(0.5)  # the web login has now been idle for more than a second; the API session not
    assert listtypes()["error"]["code"] == "AUTHENTICATION_REQUIRED"
    [entry] = gateway_of(app).outbox.undelivered()
    assert (entry.notice.sid, entry.notice.reason) == (linked.partition(".")[0], "idle_timeout")
    assert gateway_of(app).sessions.list_for_user(7) == []


def test_a_receivers_retry_after_is_respected_up_to_the_cap(notifying_app, receiver):
    app = notifying_app(LOGOUT_RETRY_MAX=2)
    access_key = gateway_of(app).users.add(USERNAME).access_key
    receiver.mode, receiver.retry_after = 429, "1"
    with delivering(app):
        log_in_and_out(app, access_key)
        wait_until(lambda: len(receiver.arrivals) >= 3, what="three tries")
    gaps = [later - earlier for earlier, later in zip(receiver.arrivals, receiver.arrivals[1:])]
    # Without Retry-After the waits would be 0.1 s then 0.2 s (LOGOUT_RETRY_INITIAL).
    assert all(0.9 <= gap < 1.9 for gap in gaps[:2]), gaps


def test_delivery_goes_on_when_redis_lost_its_consumer_group(notifying_app, receiver, real_redis):
    """A Redis restarted without its data has no consumer group: the process makes it again."""
    app = notifying_app()
    gateway = gateway_of(app)
    with delivering(app):
        wait_until(lambda: real_redis.exists(gateway.keys.logout_outbox()), what="the group")
        real_redis.flushall()
        access_key = gateway.users.add(USERNAME).access_key
        family = log_in_and_out(app, access_key)
        [received] = receiver.wait_for(1, timeout=10)
    assert jwt.decode(received.token, options={"verify_signature": False})["sid"] == family


def test_a_hanging_receiver_does_not_hold_up_the_others(make_app, receiver):
    """Two receivers, two POSTs in flight at most: the one that hangs gets one slot at a time,
    so the other one has every token while the first is still hanging."""
    hanging = LogoutReceiver(free_port()).start()
    hanging.mode = "hang"
    try:
        app = make_app(
            LOGOUT_RECEIVERS=[hanging.url, receiver.url],
            LOGOUT_ISSUER="https://gw.example",
            LOGOUT_DELIVERY_CONCURRENCY=2,
            LOGOUT_DELIVERY_TIMEOUT=5,
        )
        access_key = gateway_of(app).users.add(USERNAME).access_key
        families = {log_in_and_out(app, access_key) for _ in range(4)}
        with delivering(app):
            started = time.monotonic()
            got = receiver.wait_for(4, timeout=10)
            took = time.monotonic() - started
            hung = len(hanging.arrivals)
            hanging.release()
    finally:
        hanging.stop()
    sids = {jwt.decode(r.token, options={"verify_signature": False})["sid"] for r in got}
    assert sids == families
    assert took < 2.5, f"the answering receiver waited {took:.1f} s behind the hanging one"
    assert hung == 1  # one POST hanging at a time


def test_keys_from_files_sign_and_are_published_and_none_is_kept_in_redis(
    notifying_app, receiver, real_redis, tmp_path
):
    """WSGATE_LOGOUT_SIGNING_KEY_FILES: the first file's key signs, both are published, Redis
    holds no key; rotate-key says how to rotate files instead."""
    app = notifying_app()
    cli = app.test_cli_runner()
    paths = [str(tmp_path / "new.pem"), str(tmp_path / "old.pem")]
    kids = []
    for path in paths:
        made = cli.invoke(args=["notifications", "new-key", path])
        assert made.exit_code == 0, made.output
        kids.append(made.output.split()[3])
    assert oct((tmp_path / "new.pem").stat().st_mode & 0o777) == "0o600"
    assert cli.invoke(args=["notifications", "new-key", paths[0]]).exit_code == 1  # no overwrite

    app = notifying_app(LOGOUT_SIGNING_KEY_FILES=paths)
    gateway = gateway_of(app)
    access_key = gateway.users.add(USERNAME).access_key
    with served(app) as base_url, delivering(app):
        family = log_in_and_out(app, access_key)
        [received] = receiver.wait_for(1, timeout=5)
        published = app.test_client().get("/.well-known/jwks.json").get_json()["keys"]
        claims = TokenVerifier(base_url, "https://gw.example", "rp").verify(received.token)
    assert claims["sid"] == family
    assert jwt.get_unverified_header(received.token)["kid"] == kids[0]
    assert [key["kid"] for key in published] == kids
    assert real_redis.exists(gateway.keys.logout_signing_keys()) == 0
    refused = app.test_cli_runner().invoke(args=["notifications", "rotate-key"])
    assert refused.exit_code == 1 and "new-key" in refused.output


def test_a_key_file_that_is_no_p256_key_stops_the_app_at_start(make_app, receiver, tmp_path):
    wrong = tmp_path / "ed25519.pem"
    wrong.write_bytes(
        ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    for path, says in ((wrong, "not an EC P-256 key"), (tmp_path / "missing.pem", "No such file")):
        with pytest.raises(KeyFileError, match=says):
            make_app(LOGOUT_RECEIVERS=[receiver.url], LOGOUT_SIGNING_KEY_FILES=[str(path)])

"""Logins of one user racing at MAX_FAMILIES_PER_USER, over real HTTP against gunicorn with two
workers: the workers of an integration log in at the same moment, and no login may end a
session that the cap does not require to end. Both ways the gateway keeps the cap: the script
that opens each family ends the oldest (a single Redis), and, with logout notifications on
(their outbox entries must ride in the round trip of each ending, told which families it ends),
each login claims what it leaves beyond the cap and ends that."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from tests.e2e.conftest import Gateway
from tests.e2e.wire import add_user, code, proof, send
from tests.gunicorn_process import start_gunicorn, stop_gunicorn
from webservice.standalone.redis_server import RedisServer

pytestmark = pytest.mark.e2e

CAP = 3
RACERS = 12


#: Logout notifications to a receiver that nobody delivers to (their outbox only fills up).
NOTIFICATIONS = {
    "WSGATE_LOGOUT_RECEIVERS": json.dumps(
        [{"url": "http://127.0.0.1:9/logout", "audience": "e2e-cap"}]
    ),
    "WSGATE_LOGOUT_ISSUER": "http://127.0.0.1",
}


@pytest.fixture(scope="module", params=["cap in script", "claimed"])
def capped_gateway(request, tmp_path_factory) -> Gateway:
    """gunicorn with 2 workers over its own redis-server, each user kept to CAP live logins;
    ``claimed``: with logout notifications on."""
    workdir = tmp_path_factory.mktemp("e2e-cap")
    extra_env = {"WSGATE_MAX_FAMILIES_PER_USER": str(CAP)}
    if request.param == "claimed":
        extra_env.update(NOTIFICATIONS)
    with RedisServer(workdir / "redis") as redis_server:
        log_path = workdir / "gunicorn.log"
        process, base_url, env = start_gunicorn(redis_server.url, log_path, extra_env=extra_env)
        try:
            yield Gateway(base_url, redis_server.url, env, log_path)
        finally:
            stop_gunicorn(process)


def test_racing_logins_at_the_cap_end_only_what_the_cap_requires(capped_gateway):
    base = capped_gateway.base_url
    access_key = add_user(capped_gateway, "racer")

    def log_in(before_login: threading.Barrier | None = None) -> str:
        token = send(base, "GET", "?operation=getchallenge&username=racer")["result"]["token"]
        if before_login is not None:
            before_login.wait()
        answer = send(
            base,
            "POST",
            data={"operation": "login", "username": "racer", "accessKey": proof(token, access_key)},
        )
        assert answer["success"], answer
        return answer["result"]["sessionName"]

    first = [log_in() for _ in range(CAP)]
    all_challenged = threading.Barrier(RACERS, timeout=30)
    with ThreadPoolExecutor(RACERS) as pool:
        racers = list(pool.map(lambda _: log_in(all_challenged), range(RACERS)))

    def alive(session: str) -> bool:
        return code(send(base, "GET", f"?operation=listtypes&sessionName={session}")) is None

    assert [alive(session) for session in first] == [False] * CAP, "the oldest end first"
    assert sum(alive(session) for session in racers) == CAP, "the user keeps exactly the cap"
    audit = redis.Redis.from_url(capped_gateway.redis_url, decode_responses=True)
    capped = [
        fields
        for _, fields in audit.xrange("wsgate:audit")
        if fields.get("reason") == "family_cap"
    ]
    if capped_gateway.env.get("WSGATE_LOGOUT_RECEIVERS"):
        # An ending that rides is audited as it is announced, before it is made: two logins
        # that read the same oldest family both audit ending it (the second ends nothing).
        assert len(capped) >= RACERS
    else:
        assert len(capped) == RACERS, "one ending per login, audited once"
    audit.close()

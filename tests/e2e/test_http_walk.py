"""The session walk over real HTTP against gunicorn with two workers, the way real clients call.

Every call carries an empty ``corebos-authorization`` header, as the official JavaScript client
sends one; every answer is checked to be HTTP 200, application/json and the envelope (wire.send).
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.e2e.wire import add_user, code, proof, send

pytestmark = pytest.mark.e2e

#: What the official JS client sends on every call: the header, empty until it has a session.
EMPTY_AUTH = {"corebos-authorization": ""}


def test_walk_with_the_quirks_of_real_clients(live_gateway):
    base = live_gateway.base_url
    access_key = add_user(live_gateway, "walker")

    # A client that POSTs getchallenge with everything in the query string and an empty body
    # without a Content-Type.
    first = send(
        base, "POST", "?operation=getchallenge&username=walker", data=b"", headers=EMPTY_AUTH
    )
    assert first["success"], first
    assert set(first["result"]) == {"token", "serverTime", "expireTime"}
    # A client that builds its query string as "?" + "&name=value"...
    second = send(base, "GET", "?&operation=getChallenge&username=walker", headers=EMPTY_AUTH)
    assert second["success"], second
    assert second["result"]["token"] != first["result"]["token"]

    # Login by GET, with the accessKey in the query string.
    by_get = send(
        base,
        "GET",
        "?&operation=LOGIN&username=walker&accessKey="
        + proof(first["result"]["token"], access_key),
        headers=EMPTY_AUTH,
    )
    assert by_get["success"], by_get
    assert set(by_get["result"]) == {"sessionName", "userId", "version", "vtigerVersion"}
    assert by_get["result"]["userId"].startswith("19x")
    # Login with a JSON body (and the other outstanding token: both are valid at once).
    by_json = send(
        base,
        "POST",
        json={
            "operation": "login",
            "username": "walker",
            "accessKey": proof(second["result"]["token"], access_key),
        },
        headers=EMPTY_AUTH,
    )
    assert by_json["success"], by_json
    session = by_get["result"]["sessionName"]
    other = by_json["result"]["sessionName"]
    assert session != other

    # The same authenticated operation, every way clients send it.
    ways = {
        "header, form": dict(
            method="POST",
            data={"operation": "listTypes"},
            headers={"corebos-authorization": session},
        ),
        "header, GET": dict(
            method="GET",
            query="?operation=ListTypes",
            headers={"corebos-authorization": session},
        ),
        "sessionName, GET, leading &": dict(
            method="GET", query=f"?&operation=listTypes&sessionName={session}", headers=EMPTY_AUTH
        ),
        "sessionName, form with charset": dict(
            method="POST",
            data=f"operation=listtypes&sessionName={session}",
            headers={
                **EMPTY_AUTH,
                "Content-Type": "application/x-www-form-urlencoded; charset=UTF-8",
            },
        ),
        "sessionName, multipart": dict(
            method="POST",
            files={"operation": (None, "listtypes"), "sessionName": (None, session)},
            headers=EMPTY_AUTH,
        ),
        "sessionName, JSON": dict(
            method="POST",
            json={"operation": "LISTTYPES", "sessionName": session},
            headers=EMPTY_AUTH,
        ),
        "sessionName, /webservice": dict(
            method="GET",
            query=f"?operation=listtypes&sessionName={session}",
            path="/webservice",
            headers=EMPTY_AUTH,
        ),
    }
    for way, request in ways.items():
        answer = send(base, **request)
        assert answer["success"], (way, answer)
        assert "Users" in answer["result"]["types"], (way, answer)

    logout = send(
        base, "POST", data={"operation": "logout", "sessionName": session}, headers=EMPTY_AUTH
    )
    assert logout == {"success": True, "result": {"message": "successfull"}, "moreinfo": None}

    for way, request in ways.items():
        assert code(send(base, **request)) == "AUTHENTICATION_REQUIRED", way
    assert code(
        send(base, "POST", data={"operation": "logout", "sessionName": session}, headers=EMPTY_AUTH)
    ) == "AUTHENTICATION_REQUIRED"

    # The other login is a family of its own and lives on; logout by the header alone ends it.
    other_listtypes = dict(query=f"?operation=listtypes&sessionName={other}", headers=EMPTY_AUTH)
    assert send(base, **other_listtypes)["success"]
    ended = send(
        base, "POST", data={"operation": "logout"}, headers={"corebos-authorization": other}
    )
    assert ended == {"success": True, "result": {"message": "successfull"}, "moreinfo": None}
    assert code(send(base, **other_listtypes)) == "AUTHENTICATION_REQUIRED"


def probe_workers(base: str, session: str, marker: str, count: int) -> list[dict]:
    """``count`` listtypes calls, each on a new connection (no keep-alive), four at a time.

    The session travels in the form body; ``marker`` in the query string lets the access log
    tell which worker answered.
    """

    def one(i: int) -> dict:
        return send(
            base,
            "POST",
            f"?probe={marker}-{i}",
            data={"operation": "listtypes", "sessionName": session},
            headers=EMPTY_AUTH,
            fresh_connection=True,
        )

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(one, range(count)))


def answered_by_every_worker(live_gateway, session, marker, expected_code, workers=2) -> int:
    """Sends 20 fresh-connection calls (more, in rounds of 20, until every worker has answered
    one); every answer must have ``expected_code``. Answers how many were sent."""
    sent = 0
    while True:
        answers = probe_workers(live_gateway.base_url, session, f"{marker}-{sent}", 20)
        sent += len(answers)
        assert [code(answer) for answer in answers] == [expected_code] * len(answers), answers
        if len(live_gateway.worker_pids(marker)) >= workers:
            return sent
        assert sent < 400, f"only workers {live_gateway.worker_pids(marker)} answered"


def test_a_logged_out_session_is_refused_by_every_worker(live_gateway):
    base = live_gateway.base_url
    access_key = add_user(live_gateway, "everywhere")
    token = send(base, "GET", "?operation=getchallenge&username=everywhere")["result"]["token"]
    credentials = {"username": "everywhere", "accessKey": proof(token, access_key)}
    login = send(base, "POST", data={"operation": "login", **credentials})
    session = login["result"]["sessionName"]
    marker = uuid.uuid4().hex

    # Every worker knows the session...
    answered_by_every_worker(live_gateway, session, f"alive-{marker}", None)
    logout = send(base, "POST", data={"operation": "logout", "sessionName": session})
    assert logout["success"], logout
    # ...and right after the logout, every worker refuses it.
    answered_by_every_worker(live_gateway, session, f"dead-{marker}", "AUTHENTICATION_REQUIRED")

"""What a real coreBOS answers, over real gunicorn (issue: wire fidelity): usernames found in any
case, getchallenge naming a user it cannot find, ``vtigerVersion`` 5.5.0, ``moreinfo: null`` on
every answer (wire.check_envelope checks it on each call), and the vtiger profile's codes for a
missing, unknown, expired and idle session."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.attack.conftest import Gateway, serve_gateway
from tests.e2e.wire import add_user, code, proof, send

pytestmark = pytest.mark.e2e


def login(gateway: Gateway, username: str, access_key: str) -> dict:
    challenge = send(gateway.base_url, "GET", f"?operation=getchallenge&username={username}")
    assert challenge["success"], challenge
    token = challenge["result"]["token"]
    return send(
        gateway.base_url,
        "POST",
        data={"operation": "login", "username": username, "accessKey": proof(token, access_key)},
    )


def listtypes(gateway: Gateway, session_name: str | None) -> dict:
    query = "?operation=listtypes" + (f"&sessionName={session_name}" if session_name else "")
    return send(gateway.base_url, "GET", query)


# --- coreBOS profile (the default) ---------------------------------------------------------------


@pytest.fixture(scope="module")
def corebos_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    extra_env = {"WSGATE_HIDE_UNKNOWN_USERS": "false"}
    with serve_gateway(tmp_path_factory.mktemp("corebos"), extra_env) as served:
        yield served


def test_a_username_is_found_in_any_case(corebos_gateway: Gateway) -> None:
    access_key = add_user(corebos_gateway, "MixedCase")
    for spelling in ("mixedcase", "MIXEDCASE", "MixedCase"):
        answer = login(corebos_gateway, spelling, access_key)
        assert answer["success"], (spelling, answer)
        assert answer["result"]["vtigerVersion"] == "5.5.0"
        assert answer["moreinfo"] is None


def test_two_users_differing_only_in_case_cannot_be_created(corebos_gateway: Gateway) -> None:
    add_user(corebos_gateway, "onlyonce")
    with pytest.raises(Exception) as refused:
        corebos_gateway.flask("users", "add", "ONLYONCE", "--json")
    assert "exists" in str(getattr(refused.value, "stderr", "")).lower(), refused.value


def test_getchallenge_names_the_user_it_cannot_find(corebos_gateway: Gateway) -> None:
    answer = send(corebos_gateway.base_url, "GET", "?operation=getchallenge&username=nobody_here")
    assert code(answer) == "AUTHENTICATION_REQUIRED"
    assert answer["error"]["message"] == "Given user cannot be found: nobody_here"
    assert answer["moreinfo"] is None


def test_every_refused_session_is_authentication_required(corebos_gateway: Gateway) -> None:
    for session_name in (None, "garbage", "A" * 22 + "." + "B" * 43):
        answer = listtypes(corebos_gateway, session_name)
        assert answer["error"] == {
            "message": "Authentication required",
            "code": "AUTHENTICATION_REQUIRED",
        }, answer


# --- vtiger profile ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vtiger_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    extra_env = {
        "WSGATE_WIRE_PROFILE": "vtiger",
        "WSGATE_SESSION_IDLE_TIMEOUT": "1",
        "WSGATE_SESSION_ABSOLUTE_TIMEOUT": "2",
    }
    with serve_gateway(tmp_path_factory.mktemp("vtiger"), extra_env) as served:
        yield served


def test_vtiger_missing_and_unknown_sessions(vtiger_gateway: Gateway) -> None:
    missing = listtypes(vtiger_gateway, None)
    assert missing["error"] == {"message": "Authencation required", "code": "AUTHENTICATION_REQUIRED"}
    unknown = listtypes(vtiger_gateway, "A" * 22 + "." + "B" * 43)
    assert unknown["error"] == {
        "message": "Session Identifier provided is Invalid",
        "code": "INVALID_SESSIONID",
    }


def test_vtiger_a_logged_out_session_is_invalid(vtiger_gateway: Gateway) -> None:
    session_name = login(vtiger_gateway, "vt_out", add_user(vtiger_gateway, "vt_out"))["result"]["sessionName"]
    assert send(vtiger_gateway.base_url, "POST", data={"operation": "logout", "sessionName": session_name})["success"]
    assert code(listtypes(vtiger_gateway, session_name)) == "INVALID_SESSIONID"


def test_vtiger_an_idle_session_is_told_apart(vtiger_gateway: Gateway) -> None:
    session_name = login(vtiger_gateway, "vt_idle", add_user(vtiger_gateway, "vt_idle"))["result"]["sessionName"]
    time.sleep(1.3)
    answer = listtypes(vtiger_gateway, session_name)
    assert answer["error"] == {
        "message": "Session has been invalidated to due lack activity",
        "code": "SESSION_LEFT_IDLE",
    }
    # Once told, the session is gone: from then on it is simply invalid.
    assert code(listtypes(vtiger_gateway, session_name)) == "INVALID_SESSIONID"


def test_vtiger_an_expired_session_is_told_apart(vtiger_gateway: Gateway) -> None:
    session_name = login(vtiger_gateway, "vt_exp", add_user(vtiger_gateway, "vt_exp"))["result"]["sessionName"]
    started = time.monotonic()
    while time.monotonic() - started < 2.2:
        answer = listtypes(vtiger_gateway, session_name)
        if not answer["success"]:
            break
        time.sleep(0.4)
    assert answer["error"] == {
        "message": "Session has life span over please login again",
        "code": "SESSION_EXPIRED",
    }, answer

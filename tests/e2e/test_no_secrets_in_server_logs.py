"""gunicorn's own logs, with the access log on and everything at debug, hold no secret either:
clients that send everything by GET put login proofs and session ids in the query string."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import requests

from tests.gunicorn_process import ROOT, start_gunicorn, stop_gunicorn
from webservice.standalone.redis_server import RedisServer


def test_access_and_debug_logs_hold_no_secret(tmp_path):
    with RedisServer(tmp_path / "redis") as redis_server:
        log_path = tmp_path / "gunicorn.log"
        process, base_url, env = start_gunicorn(
            redis_server.url, log_path, workers=1,
            # The project's own access log format (the tests' usual one is replaced), on stdout.
            extra_env={"WSGATE_ACCESS_LOG": "-", "WSGATE_LOG_LEVEL": "debug",
                       "GUNICORN_CMD_ARGS": "--no-control-socket"},
        )
        try:
            secrets = exercise(base_url, env)
        finally:
            stop_gunicorn(process)
        text = log_path.read_text()
    assert "GET /webservice.php" in text and "GET /v1/me/sessions" in text, "the access log is not on"
    leaks = [what for what, value in secrets.items() if value in text]
    assert not leaks, f"secrets in gunicorn's log: {leaks}"


def exercise(base_url: str, env: dict[str, str]) -> dict[str, str]:
    """API calls the way GET-only clients make them; answers the secrets they carried."""
    added = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "users", "add", "alice", "--json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    access_key = json.loads(added.stdout)["accessKey"]
    url = f"{base_url}/webservice.php"
    http = requests.Session()
    token, proof, session_id = get_login(http, url, access_key)
    assert http.get(url, params={"operation": "listtypes", "sessionName": session_id},
                    timeout=10).json()["success"]
    assert http.post(url, data={"operation": "listtypes"},
                     headers={"corebos-authorization": session_id}, timeout=10).json()["success"]
    assert http.get(url, params={"operation": "logout", "sessionName": session_id},
                    timeout=10).json()["success"]
    # The REST session API, by bearer session: a live one, then the same after its logout.
    _token, _proof, bearer = get_login(http, url, access_key)
    headers = {"Authorization": f"Bearer {bearer}"}
    assert http.get(f"{base_url}/v1/me/sessions", headers=headers, timeout=10).status_code == 200
    assert http.post(f"{base_url}/v1/auth/logout", headers=headers, timeout=10).status_code == 200
    assert http.get(f"{base_url}/v1/me/sessions", headers=headers, timeout=10).status_code == 401
    return {
        "access key": access_key,
        "challenge token": token,
        "login proof": proof,
        "session id": session_id,
        "session secret": session_id.partition(".")[2],
        "bearer session": bearer,
        "bearer secret": bearer.partition(".")[2],
    }


def get_login(http: requests.Session, url: str, access_key: str) -> tuple[str, str, str]:
    """getchallenge + login, both by GET (secrets in the query string): token, proof, session."""
    token = http.get(url, params={"operation": "getchallenge", "username": "alice"},
                     timeout=10).json()["result"]["token"]
    proof = hashlib.md5((token + access_key).encode()).hexdigest()
    answer = http.get(url, params={"operation": "login", "username": "alice", "accessKey": proof},
                      timeout=10).json()
    return token, proof, answer["result"]["sessionName"]

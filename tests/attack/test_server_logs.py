"""No secret in any log line, gunicorn's own included: a request line gunicorn cannot parse is
logged without the live session id it carries."""

from __future__ import annotations

import hashlib
import json

import pytest
import requests

from tests.attack.conftest import Gateway
from tests.attack.test_input import raw_request

pytestmark = pytest.mark.e2e
ENDPOINT = "/webservice.php"


def live_session(gateway: Gateway, name: str) -> str:
    record = json.loads(gateway.flask("users", "add", name, "--json").stdout)
    token = requests.get(
        gateway.base_url + ENDPOINT, params={"operation": "getchallenge", "username": name}, timeout=10
    ).json()["result"]["token"]
    proof = hashlib.md5((token + record["accessKey"]).encode()).hexdigest()
    answer = requests.post(
        gateway.base_url + ENDPOINT,
        data={"operation": "login", "username": name, "accessKey": proof},
        timeout=10,
    ).json()
    return answer["result"]["sessionName"]


@pytest.mark.parametrize(
    "spoiler",
    [b"\t", b"\xff", b"\xc3\xa9", b" x", b"\x00", b"\r"],
    ids=["tab", "byte ff", "raw utf-8", "space", "nul", "cr"],
)
def test_an_unparseable_request_line_is_logged_without_its_secrets(
    live_gateway: Gateway, spoiler: bytes
) -> None:
    session_name = live_session(live_gateway, f"logged{spoiler.hex()}")
    secret = session_name.partition(".")[2]
    line = (
        b"GET /webservice.php?operation=listtypes&sessionName=" + session_name.encode()
        + spoiler + b"&accessKey=" + secret[::-1].encode() + b" HTTP/1.1\r\n"
    )
    raw_request(live_gateway, line + b"Host: x\r\nConnection: close\r\n\r\n")
    raw_request(live_gateway, b"GET /?sessionName=" + session_name.encode() + spoiler + b" HTTP/1.1\r\n\r\n")
    assert live_gateway.log_path is not None
    log = live_gateway.log_path.read_bytes()
    assert secret.encode() not in log, "a live session's secret is in the server's log"
    assert secret[::-1].encode() not in log, "an accessKey value is in the server's log"


@pytest.mark.parametrize("header", [b"corebos-authorization: {id}\x00", b"Bad Name{id}: 1", b"X: {id}\r\n \x7f"])
def test_an_unparseable_header_is_logged_without_its_secrets(live_gateway: Gateway, header: bytes) -> None:
    session_name = live_session(live_gateway, f"header{abs(hash(header)) % 10_000}")
    line = header.replace(b"{id}", session_name.encode())
    raw_request(
        live_gateway,
        b"GET /webservice.php?operation=listtypes HTTP/1.1\r\nHost: x\r\n" + line + b"\r\n\r\n",
    )
    assert live_gateway.log_path is not None
    assert session_name.partition(".")[2].encode() not in live_gateway.log_path.read_bytes()

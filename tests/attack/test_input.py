"""Input that reaches the application: whatever a client sends, the answer is the envelope with
the right code, and the server logs no traceback."""

from __future__ import annotations

import hashlib
import json
import socket
from urllib.parse import urlsplit

import pytest
import requests

from tests.attack.conftest import Gateway

pytestmark = pytest.mark.e2e
ENDPOINT = "/webservice.php"


def user_with_live_token(gateway: Gateway, name: str) -> tuple[str, str]:
    """A user with a challenge token outstanding: (access key, token)."""
    record = json.loads(gateway.flask("users", "add", name, "--json").stdout)
    answer = requests.get(
        gateway.base_url + ENDPOINT,
        params={"operation": "getchallenge", "username": name},
        timeout=10,
    ).json()
    return record["accessKey"], answer["result"]["token"]


def tracebacks(gateway: Gateway) -> int:
    assert gateway.log_path is not None
    return gateway.log_path.read_text(errors="replace").count("Traceback")


@pytest.mark.parametrize(
    "field",
    ["username", "accessKey", "operation", "sessionName", "name of a parameter"],
)
def test_json_text_that_is_not_unicode_is_an_invalid_parameter(live_gateway: Gateway, field: str) -> None:
    """A lone UTF-16 surrogate (``\\ud800``) in any string of a JSON body, for a real user with a
    live token, answers INVALID_PARAMETER; before, login hashed it and answered
    INTERNAL_SERVER_ERROR with a traceback in the log."""
    name = f"surrogate{abs(hash(field)) % 10_000}"
    access_key, token = user_with_live_token(live_gateway, name)
    proof = hashlib.md5((token + access_key).encode()).hexdigest()
    body = {"operation": "login", "username": name, "accessKey": proof}
    if field == "name of a parameter":
        raw = json.dumps(body)[:-1] + ', "x\\ud800": "1"}'
    else:
        body[field] = body.get(field, "") + "\udfff"
        raw = json.dumps(body)  # ensure_ascii: the surrogate travels as the escape \udfff
    before = tracebacks(live_gateway)
    answer = requests.post(
        live_gateway.base_url + ENDPOINT,
        data=raw.encode(),
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert answer.status_code == 200
    assert answer.json()["success"] is False
    assert answer.json()["error"]["code"] == "INVALID_PARAMETER", answer.text
    assert tracebacks(live_gateway) == before


def raw_request(gateway: Gateway, request: bytes) -> bytes:
    address = urlsplit(gateway.base_url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as connection:
        connection.sendall(request)
        connection.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


@pytest.mark.parametrize(
    "chunks",
    [b"zz\r\noperation=listtypes\r\n0\r\n\r\n", b"5\r\noperationX\r\n0\r\n\r\n", b"ffff\r\nop"],
    ids=["size not hex", "missing terminator", "cut short"],
)
def test_a_malformed_chunked_body_is_an_invalid_parameter(live_gateway: Gateway, chunks: bytes) -> None:
    """A body whose chunked encoding is broken answers the envelope (INVALID_PARAMETER), not
    INTERNAL_SERVER_ERROR with a traceback."""
    host = urlsplit(live_gateway.base_url).netloc.encode()
    before = tracebacks(live_gateway)
    answer = raw_request(
        live_gateway,
        b"POST /webservice.php HTTP/1.1\r\nHost: " + host + b"\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunks,
    )
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), answer[:300]
    envelope = json.loads(body)
    assert envelope["success"] is False and envelope["error"]["code"] == "INVALID_PARAMETER", body
    assert tracebacks(live_gateway) == before

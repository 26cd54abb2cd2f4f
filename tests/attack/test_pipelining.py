"""A client that pipelines requests on one keep-alive connection cannot keep its worker to
itself: another connection to the same worker is answered after a few of its answers, not after
its whole pipeline (config/gunicorn.conf.py's ``post_request``; before it, after all 500 of
them). Over real HTTP against gunicorn with one worker, so both connections share it."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.attack.conftest import serve_gateway

pytestmark = pytest.mark.e2e

PIPELINED = 500
#: The other connection's answer may come after this many of the pipeline's, at most (it came
#: after 10 to 14, timed by this test's own threads; before the fix, after all 500).
AT_MOST_AHEAD = PIPELINED // 5
#: A session id of the wrong shape: refused before Redis, so its greenlet never waits on Redis
#: either, the cheapest way to hold a worker.
REQUEST = b"GET /webservice.php?operation=listtypes&sessionName=x HTTP/1.1\r\nHost: gateway\r\n\r\n"


def answers(connection: socket.socket, count: int) -> list[tuple[float, bytes]]:
    """The next ``count`` HTTP answers on ``connection``: (when each arrived, its body)."""
    received, buffer = [], b""
    while len(received) < count:
        data = connection.recv(65536)
        assert data, f"the connection closed after {len(received)} of {count} answers"
        buffer += data
        while b"\r\n\r\n" in buffer:
            head, _, rest = buffer.partition(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            if len(rest) < length:
                break
            received.append((time.perf_counter(), rest[:length]))
            buffer = rest[length:]
    return received


def test_a_pipelining_client_cannot_starve_another_connection_of_its_worker(tmp_path: Path):
    with serve_gateway(tmp_path, {"WSGATE_WORKERS": "1"}) as gateway:
        address = urlsplit(gateway.base_url)
        hog = socket.create_connection((address.hostname, address.port), timeout=30)
        other = socket.create_connection((address.hostname, address.port), timeout=30)
        with hog, other:
            hogged: list[tuple[float, bytes]] = []
            reader = threading.Thread(target=lambda: hogged.extend(answers(hog, PIPELINED)))
            reader.start()
            hog.sendall(REQUEST * PIPELINED)
            time.sleep(0.005)  # the worker is into the pipeline
            other.sendall(REQUEST)
            [(answered, body)] = answers(other, 1)
            reader.join(timeout=60)
        assert len(hogged) == PIPELINED, "every pipelined request answered"
        assert all(b'"code":"AUTHENTICATION_REQUIRED"' in body for _, body in hogged)
        assert b'"code":"AUTHENTICATION_REQUIRED"' in body
        ahead = sum(when < answered for when, _ in hogged)
        assert ahead <= AT_MOST_AHEAD, f"answered after {ahead} of the pipeline's {PIPELINED}"

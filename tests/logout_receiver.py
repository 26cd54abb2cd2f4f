"""A real back-channel logout receiver for the tests: an HTTP server that takes the gateway's
POSTs, and checks every logout token as a relying party would (OpenID Connect Back-Channel Logout
1.0, section 2.6), against the keys the gateway publishes at ``/.well-known/jwks.json``, fetched
over HTTP, with PyJWT."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import jwt

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"


@dataclass
class Received:
    token: str
    at: float
    content_type: str


@dataclass
class LogoutReceiver:
    """``mode``: ``ok`` answers 200; ``hang`` holds every request until ``release`` (or the
    client gives up); an int answers that status."""

    port: int
    mode: Any = "ok"
    #: Sent as ``Retry-After`` with an error status, when set.
    retry_after: str | None = None
    received: list[Received] = field(default_factory=list)
    #: Every POST that arrived, whatever it was answered (its arrival time).
    arrivals: list[float] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _released: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/backchannel-logout"

    def start(self) -> LogoutReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length).decode("ascii")
                with receiver._lock:
                    receiver.arrivals.append(time.time())
                    mode = receiver.mode
                if mode == "hang":
                    receiver._released.wait(60)
                    return
                if mode == "ok":
                    token = parse_qs(body).get("logout_token", [""])[0]
                    with receiver._lock:
                        receiver.received.append(
                            Received(token, time.time(), self.headers.get("Content-Type", ""))
                        )
                    self.send_response(200)
                else:
                    self.send_response(int(mode))
                    if receiver.retry_after is not None:
                        self.send_header("Retry-After", receiver.retry_after)
                self.send_header("Cache-Control", "no-store")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._released.clear()
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Closes the port: connections are refused until :meth:`start`."""
        if self._server is not None:
            self._released.set()
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def release(self) -> None:
        self._released.set()

    def tokens(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def wait_for(self, count: int, timeout: float) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.tokens()) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.tokens()


class TokenVerifier:
    """Verifies logout tokens against the gateway's JWKS, fetched over HTTP (PyJWKClient asks
    again when a token names a key it has not seen)."""

    def __init__(self, gateway_url: str, issuer: str, audience: str) -> None:
        self.jwks = jwt.PyJWKClient(f"{gateway_url}/.well-known/jwks.json", cache_keys=True)
        self.issuer = issuer
        self.audience = audience

    def verify(self, token: str) -> dict[str, Any]:
        header = jwt.get_unverified_header(token)
        assert header["typ"] == "logout+jwt", header
        assert header["alg"] == "ES256", header
        key = self.jwks.get_signing_key_from_jwt(token)
        claims = jwt.decode(
            token,
            key.key,
            algorithms=["ES256"],
            audience=self.audience,
            issuer=self.issuer,
            options={"require": ["iss", "aud", "iat", "exp", "jti", "events", "sid", "sub"]},
        )
        assert claims["events"] == {BACKCHANNEL_EVENT: {}}, claims
        assert 0 < claims["exp"] - claims["iat"] <= 120, claims
        assert "nonce" not in claims, claims
        return claims

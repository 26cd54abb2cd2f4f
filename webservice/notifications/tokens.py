"""Logout tokens as OpenID Connect Back-Channel Logout 1.0 (section 2.4) defines them, signed
with PyJWT.

Header ``{"typ": "logout+jwt", "alg": "ES256", "kid": ...}``; claims ``iss``, ``aud``, ``iat``,
``exp`` (``LOGOUT_TOKEN_TTL`` later, at most 120 s), ``jti`` (fresh for every token, so a retry
is a new token), ``events`` with the back-channel logout event, ``sid`` (the family id, the part
before the ``.`` of each of its session ids) and ``sub`` (the user's wire ``userId``). Never a
``nonce``, as the specification requires.
"""

from __future__ import annotations

import secrets
import time
from typing import Protocol

import jwt

from webservice.store.outbox import Notice
from webservice.store.signing_keys import ALGORITHM, SigningKey

TOKEN_TYPE = "logout+jwt"
BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"


class KeySource(Protocol):
    """Where the signing key comes from: Redis (store/signing_keys.py) or files (key_files.py)."""

    def current(self) -> SigningKey: ...


class LogoutTokens:
    def __init__(self, keys: KeySource, issuer: str, ttl: int) -> None:
        self.keys = keys
        self.issuer = issuer
        self.ttl = ttl

    def sign(self, notice: Notice) -> str:
        key = self.keys.current()
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": notice.aud,
            "iat": now,
            "exp": now + self.ttl,
            "jti": secrets.token_urlsafe(16),
            "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
            "sid": notice.sid,
            "sub": notice.sub,
        }
        headers = {"typ": TOKEN_TYPE, "kid": key.kid}
        return jwt.encode(claims, key.private_key, algorithm=ALGORITHM, headers=headers)

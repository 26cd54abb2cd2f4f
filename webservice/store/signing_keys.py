"""The keys that sign logout tokens (ES256: ECDSA on P-256), kept in Redis so that every gateway
host publishes the same JWKS and every delivery process signs with the same key.

One hash, ``P:logout-keys`` (keys.py)::

    current     the kid of the key that signs now
    k:<kid>     that key's private half, PKCS#8 PEM
    c:<kid>     when it was made (ms, the Redis server's clock)
    r:<kid>     when a newer key replaced it (ms); absent while it is current

A kid is the key's RFC 7638 JWK thumbprint. The first key is made by whoever needs it first
(:meth:`SigningKeys.current`: the first delivery process, or the JWKS view); ``flask notifications
rotate-key`` makes a new one current. A replaced key stays published (:meth:`SigningKeys.published`)
for ``keep_seconds`` after its replacement: longer than any token it signed lives, plus the time a
delivery process takes to notice the new key (:data:`RELOAD_SECONDS`); then the next rotation
removes it.

The private key in Redis is the price of having no key file to copy to every host: whoever can read
that hash can sign logout tokens (README: Logout notifications). ``LOGOUT_SIGNING_KEY_FILES`` keeps
the keys in files instead (notifications/key_files.py).
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from webservice.store.client import RedisClient
from webservice.store.keys import RedisKeys
from webservice.store.scripts import CLOCK, LuaScript

ALGORITHM = "ES256"
#: How often a delivery process asks which key is current (so a rotation takes effect within it).
RELOAD_SECONDS = 5.0


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: ec.EllipticCurvePrivateKey

    def public_jwk(self) -> dict[str, Any]:
        jwk = ECAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "use": "sig", "alg": ALGORITHM}


def new_signing_key() -> tuple[SigningKey, str]:
    """A fresh key and its private half as PEM."""
    private_key = ec.generate_private_key(ec.SECP256R1())
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    return SigningKey(thumbprint(private_key.public_key()), private_key), pem


def thumbprint(public_key: ec.EllipticCurvePublicKey) -> str:
    """RFC 7638: SHA-256 of the required members, sorted, without whitespace."""
    jwk = ECAlgorithm.to_jwk(public_key, as_dict=True)
    required = {name: jwk[name] for name in ("crv", "kty", "x", "y")}
    canonical = json.dumps(required, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()


def _load(kid: str, pem: str) -> SigningKey:
    private_key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
    assert isinstance(private_key, ec.EllipticCurvePrivateKey)
    return SigningKey(kid, private_key)


class SigningKeys:
    #: KEYS: the key hash. ARGV: a new kid, its PEM.
    #: Returns the current kid: the existing one, else the new one, installed.
    #: Guarantees: the first key is made once, whoever asks first.
    INSTALL_FIRST = LuaScript(
        CLOCK,
        """
local current = redis.call('HGET', KEYS[1], 'current')
if current then return current end
redis.call('HSET', KEYS[1], 'current', ARGV[1], 'k:' .. ARGV[1], ARGV[2], 'c:' .. ARGV[1], ms(now_ms()))
return ARGV[1]
""",
    )

    #: KEYS: the key hash. ARGV: the new kid, its PEM, how long a replaced key is kept (ms).
    #: Returns the kid it replaced, or false.
    #: Guarantees: one step: the new key is current and the old one marked replaced at the same
    #: instant; keys replaced more than ARGV[3] ms ago are removed.
    ROTATE = LuaScript(
        CLOCK,
        """
local now = now_ms()
local old = redis.call('HGET', KEYS[1], 'current')
if old then redis.call('HSET', KEYS[1], 'r:' .. old, ms(now)) end
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  if string.sub(fields[i], 1, 2) == 'r:' and now - tonumber(fields[i + 1]) > tonumber(ARGV[3]) then
    local kid = string.sub(fields[i], 3)
    redis.call('HDEL', KEYS[1], 'k:' .. kid, 'c:' .. kid, 'r:' .. kid)
  end
end
redis.call('HSET', KEYS[1], 'current', ARGV[1], 'k:' .. ARGV[1], ARGV[2], 'c:' .. ARGV[1], ms(now))
return old or false
""",
    )

    def __init__(self, client: RedisClient, keys: RedisKeys, keep_seconds: float) -> None:
        self.client = client
        self.key = keys.logout_signing_keys()
        self.keep_ms = int(keep_seconds * 1000)
        self._cached: SigningKey | None = None
        self._checked = 0.0

    def current(self) -> SigningKey:
        """The key that signs now (made on first use); asks Redis at most every RELOAD_SECONDS."""
        if self._cached is not None and time.monotonic() - self._checked < RELOAD_SECONDS:
            return self._cached
        kid = self.client.hget(self.key, "current")
        if kid is None:
            fresh, pem = new_signing_key()
            kid = self.INSTALL_FIRST(self.client, [self.key], [fresh.kid, pem])
        if self._cached is None or self._cached.kid != kid:
            pem = self.client.hget(self.key, f"k:{kid}")
            if pem is None:  # replaced and removed between the two reads: ask again
                self._checked = 0.0
                self._cached = None
                return self.current()
            self._cached = _load(kid, pem)
        self._checked = time.monotonic()
        return self._cached

    def rotate(self) -> tuple[str, str | None]:
        """Makes a new key current; answers its kid and the kid it replaced."""
        fresh, pem = new_signing_key()
        old = self.ROTATE(self.client, [self.key], [fresh.kid, pem, self.keep_ms])
        self._cached = None
        return fresh.kid, old or None

    def published(self) -> list[dict[str, Any]]:
        """The public JWKs of the current key and of those replaced within ``keep_seconds``,
        newest first (the current key is made when there is none yet)."""
        self.current()
        fields = self.client.hgetall(self.key)
        # This host's clock against the Redis server's: keep_seconds has a minute for the skew.
        now = int(time.time() * 1000)
        live = [
            (int(fields.get(f"c:{name[2:]}", 0)), name[2:], value)
            for name, value in fields.items()
            if name.startswith("k:")
            and now - int(fields.get(f"r:{name[2:]}", now)) <= self.keep_ms
        ]
        return [_load(kid, pem).public_jwk() for _created, kid, pem in sorted(live, reverse=True)]

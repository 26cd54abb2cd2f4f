"""Secret values: how session ids, family ids, challenge tokens and access keys are made and hashed.

A session id is ``<family id>.<secret>``: the family id (128 bits) names the Redis record, the
secret (256 bits) proves possession. Only a SHA-256 digest of the secret is stored, so a copy of the
Redis data does not yield a usable session. Every part is URL-safe base64 (``A-Z a-z 0-9 - _``),
which clients that do not URL-encode pass through unharmed.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import string
from dataclasses import dataclass
from functools import cached_property

FAMILY_ID_BYTES = 16
#: Characters of the member hash that a public session handle carries.
HANDLE_MEMBER_CHARS = 8
SECRET_BYTES = 32
ACCESS_KEY_LENGTH = 24
_ACCESS_KEY_ALPHABET = string.ascii_letters + string.digits

_FAMILY_ID = r"[A-Za-z0-9_-]{22}"
_SESSION_ID_RE = re.compile(rf"({_FAMILY_ID})\.([A-Za-z0-9_-]{{43}})")
_FAMILY_ID_RE = re.compile(_FAMILY_ID)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _identifier(raw: bytes) -> str:
    """22 URL-safe characters from 16 bytes, never starting with ``-``: family ids lead public
    session handles, which people pass to command-line tools."""
    encoded = _b64(raw[:FAMILY_ID_BYTES])
    return "_" + encoded[1:] if encoded.startswith("-") else encoded


def new_family_id() -> str:
    return _identifier(secrets.token_bytes(FAMILY_ID_BYTES))


def new_secret() -> str:
    return secrets.token_urlsafe(SECRET_BYTES)


def new_challenge_token() -> str:
    return secrets.token_hex(16)


def new_access_key() -> str:
    return "".join(secrets.choice(_ACCESS_KEY_ALPHABET) for _ in range(ACCESS_KEY_LENGTH))


def hash_secret(secret: str) -> str:
    """The stored stand-in of a secret: 132 bits of its SHA-256, URL-safe base64.

    A plain fast hash is right here: the secrets are random and long, so there is nothing to
    guess, and the hash sits on the hot path of every authenticated request.
    """
    return _b64(hashlib.sha256(secret.encode("utf-8")).digest())[:22]


def family_id_for_challenge(token: str) -> str:
    """The family a challenge token turns into when a login consumes it.

    Deriving it lets the pending challenge and the new family share a Redis Cluster hash tag, so a
    login consumes the token and creates the family in one atomic script.
    """
    return _identifier(hashlib.sha256(b"wsgate-family:" + token.encode("ascii")).digest())


def handle_of(family_id: str, member: str) -> str:
    """A member's public name ``<family>:<member8>``: safe to show and to log, useless as a
    credential (``member`` is the hash of its secret)."""
    return f"{family_id}:{member[:HANDLE_MEMBER_CHARS]}"


def family_of(handle: str) -> str:
    """The family id of a member's handle (:func:`handle_of`)."""
    return handle.partition(":")[0]


def is_family_id(value: str) -> bool:
    return _FAMILY_ID_RE.fullmatch(value) is not None


@dataclass(frozen=True)
class SessionId:
    """A parsed session id. ``parse`` accepts only the exact shape the gateway hands out."""

    family_id: str
    secret: str

    @classmethod
    def parse(cls, raw: object) -> SessionId | None:
        if not isinstance(raw, str) or len(raw) != 66:
            return None
        match = _SESSION_ID_RE.fullmatch(raw)
        return cls(match.group(1), match.group(2)) if match else None

    @classmethod
    def new(cls, family_id: str | None = None) -> SessionId:
        """A new secret in family ``family_id`` (a new family when ``None``)."""
        return cls(family_id or new_family_id(), new_secret())

    @classmethod
    def for_challenge(cls, token: str) -> SessionId:
        """The API session that a login consuming challenge ``token`` starts."""
        return cls.new(family_id_for_challenge(token))

    @property
    def handle(self) -> str:
        """The public name of this session (see :func:`handle_of`)."""
        return handle_of(self.family_id, self.member)

    @cached_property
    def member(self) -> str:
        """The hash of the secret (hashed once: a request asks for it several times)."""
        return hash_secret(self.secret)

    def __str__(self) -> str:
        return f"{self.family_id}.{self.secret}"

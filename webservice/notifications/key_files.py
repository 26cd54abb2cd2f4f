"""Logout-token signing keys read from PEM files (``LOGOUT_SIGNING_KEY_FILES``), for deployments
that keep private keys out of Redis: the first file's key signs, every listed key is published.

Rotation is the operator's: make a key (``flask notifications new-key PATH``), put it on every
host, list it first (the old one second) and restart the gateway and the delivery processes;
drop the old file from the list once the tokens it signed have expired (three minutes after the
last process switched).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from webservice.store.signing_keys import SigningKey, new_signing_key, thumbprint


class KeyFileError(ValueError):
    pass


def read_key_file(path: str) -> SigningKey:
    """The ES256 key in the PEM file ``path``; KeyFileError naming the file otherwise."""
    try:
        with open(path, "rb") as file:
            private_key = serialization.load_pem_private_key(file.read(), password=None)
    except (OSError, ValueError, TypeError) as error:
        raise KeyFileError(f"logout signing key {path}: {error}") from None
    if not isinstance(private_key, ec.EllipticCurvePrivateKey) or not isinstance(
        private_key.curve, ec.SECP256R1
    ):
        raise KeyFileError(f"logout signing key {path}: not an EC P-256 key (ES256)")
    return SigningKey(thumbprint(private_key.public_key()), private_key)


def write_new_key_file(path: str) -> str:
    """Writes a new key to ``path`` (readable by its owner only; an existing file is refused);
    answers its kid."""
    key, pem = new_signing_key()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(pem)
    return key.kid


class KeyFiles:
    """The same interface as store.signing_keys.SigningKeys, from files read once."""

    def __init__(self, paths: Sequence[str]) -> None:
        if not paths:
            raise KeyFileError("no logout signing key files")
        self.keys = [read_key_file(path) for path in paths]

    def current(self) -> SigningKey:
        return self.keys[0]

    def published(self) -> list[dict[str, Any]]:
        return [key.public_jwk() for key in self.keys]

"""The user directory in Redis: who may log in, with which access key and password.

One hash per user, ``P:user:<name in lower case>`` (usernames are case-insensitive)::

    id  numeric user id (``19x<id>`` on the wire)    key  access key
    pw  Argon2id password hash (web UI login)        on   "1" active, "0" inactive
    name  the username as it was created (shown, and in sessions and the audit trail)
    t:<token>  "<expiry ms>|<address>" of an outstanding challenge token (challenges.py)

The challenge tokens live in the user's own hash so that ``login`` reads the user and its tokens in
one round trip (with the failure counters, limits.py, and under HIDE_UNKNOWN_USERS the name's decoy
record, challenges.py). ``P:user-ids`` maps each numeric id back to its username.

The access key is kept as it is, not hashed: the coreBOS login proof is MD5(token + access key),
which the server can only check by knowing the key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from webservice.store.client import RedisClient
from webservice.store.keys import RedisKeys
from webservice.store.scripts import LuaScript
from webservice.store.tokens import new_access_key

USERNAME_PATTERN = re.compile(r"[A-Za-z0-9_.@+-]{1,64}")
#: The Users entity's id prefix in webservice ids (``19x7`` is user 7).
USERS_ENTITY_PREFIX = "19x"
CHALLENGE_FIELD_PREFIX = "t:"


class UserError(Exception):
    """A directory change that cannot be made; the message says why."""


def webservice_user_id(user_id: int) -> str:
    return f"{USERS_ENTITY_PREFIX}{user_id}"


def is_valid_username(username: object) -> bool:
    return isinstance(username, str) and USERNAME_PATTERN.fullmatch(username) is not None


@dataclass(frozen=True)
class User:
    id: int
    username: str
    access_key: str | None
    password_hash: str | None
    active: bool

    @property
    def webservice_id(self) -> str:
        return webservice_user_id(self.id)

    @classmethod
    def from_fields(cls, username: str, fields: dict[str, str]) -> User:
        """The user whose record is ``fields``, found under ``username`` (any case: the record
        keeps the name as it was created)."""
        return cls(
            id=int(fields["id"]),
            username=fields.get("name") or username,
            access_key=fields.get("key") or None,
            password_hash=fields.get("pw") or None,
            active=fields.get("on") == "1",
        )


def challenge_tokens(fields: dict[str, str]) -> dict[str, int]:
    """The unused challenge tokens of a record: token -> expiry (ms). Each value is
    ``<expiry ms>|<address it was issued to>`` (store/challenges.py); one written before spent
    tokens had a set of their own may read ``<expiry ms>:spent|<address>``, and reads as unused
    (a login with it finds its pending challenge gone)."""
    tokens: dict[str, int] = {}
    prefix_length = len(CHALLENGE_FIELD_PREFIX)
    for name, value in fields.items():
        if name.startswith(CHALLENGE_FIELD_PREFIX):
            tokens[name[prefix_length:]] = int(value.partition("|")[0].partition(":")[0])
    return tokens


class UserDirectory:
    """Adds, finds and changes users."""

    # Creates user KEYS[1] from the field/value pairs in ARGV.
    # Guarantees: never overwrites an existing user (answers 0 instead).
    CREATE = LuaScript(
        """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""
    )

    # Sets the field/value pairs in ARGV on user KEYS[1].
    # Guarantees: never creates a partial user record for a name that does not exist (answers 0).
    UPDATE = LuaScript(
        """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""
    )

    def __init__(self, client: RedisClient, keys: RedisKeys) -> None:
        self.client = client
        self.keys = keys
        self.hasher = PasswordHasher()

    def add(self, username: str, password: str | None = None) -> User:
        if not is_valid_username(username):
            raise UserError(
                f"invalid username {username!r}: use 1-64 of A-Z a-z 0-9 and _ . @ + -"
            )
        key = self.keys.user(username)
        if self.client.exists(key):
            # Names differ from each other in more than case (keys.same_user).
            raise UserError(f"user {username!r} already exists")
        user_id = int(self.client.incr(self.keys.user_sequence()))
        fields = {"id": str(user_id), "name": username, "key": new_access_key(), "on": "1"}
        if password is not None:
            fields["pw"] = self.hasher.hash(password)
        # The index entry first: a crash in between leaves an id without a user, which all()
        # skips, never a user that the index misses.
        self.client.hset(self.keys.user_ids(), str(user_id), username)
        if not self.CREATE(self.client, [key], _flatten(fields)):
            self.client.hdel(self.keys.user_ids(), str(user_id))
            raise UserError(f"user {username!r} already exists")
        return User.from_fields(username, fields)

    def get(self, username: str) -> User | None:
        return self.get_with_challenges(username)[0]

    def get_with_challenges(self, username: str) -> tuple[User | None, dict[str, int]]:
        """The user and its outstanding challenge tokens (token -> expiry ms), in one round trip."""
        if not is_valid_username(username):
            return None, {}
        fields = self.client.hgetall(self.keys.user(username))
        if "id" not in fields:
            return None, {}
        return User.from_fields(username, fields), challenge_tokens(fields)

    def get_by_id(self, user_id: int) -> User | None:
        username = self.client.hget(self.keys.user_ids(), str(user_id))
        return self.get(username) if username else None

    def all(self) -> list[User]:
        """Every user, by id."""
        ids = self.client.hgetall(self.keys.user_ids())
        pipe = self.client.pipeline(transaction=False)
        names = [ids[user_id] for user_id in sorted(ids, key=int)]
        for username in names:
            pipe.hgetall(self.keys.user(username))
        return [
            User.from_fields(username, fields)
            for username, fields in zip(names, pipe.execute())
            if "id" in fields
        ]

    def set_active(self, username: str, active: bool) -> User:
        return self._update(username, {"on": "1" if active else "0"})

    def reset_access_key(self, username: str) -> User:
        return self._update(username, {"key": new_access_key()})

    def set_password(self, username: str, password: str) -> User:
        return self._update(username, {"pw": self.hasher.hash(password)})

    def authenticate(self, username: str, password: str) -> User | None:
        """The active user with this username and password, else ``None``.

        Unknown users, users without a password and inactive users take as long as a wrong
        password (one Argon2 verification each), so the answer's timing does not tell them apart.
        """
        user = self.get(username) if is_valid_username(username) else None
        return user if self.password_failure(user, password) is None else None

    def password_failure(self, user: User | None, password: str) -> str | None:
        """Why ``password`` does not log ``user`` in to the web UI (``unknown_user``,
        ``no_password``, ``wrong_password``, ``inactive``, for the audit trail), or ``None`` when
        it does. Always exactly one Argon2 verification, whatever the reason."""
        stored = user.password_hash if user is not None and user.password_hash else None
        try:
            matches = self.hasher.verify(stored or self._dummy_hash, password)
        except (VerificationError, InvalidHashError):
            matches = False
        if user is None:
            return "unknown_user"
        if stored is None:
            return "no_password"
        if not matches:
            return "wrong_password"
        if not user.active:
            return "inactive"
        return None

    @cached_property
    def _dummy_hash(self) -> str:
        """A hash of nothing anyone knows, verified against when there is no real hash."""
        return self.hasher.hash(new_access_key())

    def _update(self, username: str, fields: dict[str, str]) -> User:
        updated = is_valid_username(username) and self.UPDATE(
            self.client, [self.keys.user(username)], _flatten(fields)
        )
        user = self.get(username) if updated else None
        if user is None:
            raise UserError(f"no such user {username!r}")
        return user


def _flatten(fields: dict[str, str]) -> list[str]:
    return [part for pair in fields.items() for part in pair]

"""Who may log in to the API: :class:`ApiUser`, and where the gateway finds users.

A host app names its users with ``@gate.api_user_loader`` (a function ``username -> ApiUser |
None``); the standalone server uses the Redis user directory (store/users.py). Either way the
gateway keeps each name's outstanding challenge tokens in Redis (store/challenges.py): in the
directory's own user hash, or, for a host's users, in a small record of their own that expires
with the newest token.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from webservice.store.keys import RedisKeys
from webservice.store.users import User, UserDirectory, webservice_user_id


@dataclass(frozen=True)
class ApiUser:
    """A user as ``getchallenge`` and ``login`` see it."""

    #: The numeric user id; the wire's ``userId`` is ``19x<id>``.
    id: int
    username: str
    #: The key the login proof MD5(token + access key) is made with; ``None``: no API access.
    access_key: str | None
    active: bool = True

    @property
    def webservice_id(self) -> str:
        return webservice_user_id(self.id)


ApiUserLoader = Callable[[str], "ApiUser | None"]


class UserSource(Protocol):
    """Where logins find users, and where a user's challenge tokens are kept."""

    #: Whether Redis itself tells users from other names: then the challenge script checks that
    #: :meth:`tokens_key` exists (the Redis directory); else :meth:`lookup` does, in Python.
    known_by_redis: bool

    def tokens_key(self, username: str) -> str:
        """The hash that holds the outstanding challenge tokens of ``username``."""
        ...

    def lookup(self, username: str) -> ApiUser | None:
        """The user, asked before a challenge is issued (when not ``known_by_redis``)."""
        ...

    def from_record(self, username: str, record: dict[str, str]) -> ApiUser | None:
        """The user, given the hash at :meth:`tokens_key` as the login read it."""
        ...


def api_user(user: User) -> ApiUser:
    return ApiUser(user.id, user.username, user.access_key, user.active)


class DirectoryUsers:
    """Users of the Redis user directory: the record and its tokens are one hash."""

    known_by_redis = True

    def __init__(self, directory: UserDirectory, keys: RedisKeys) -> None:
        self.directory = directory
        self.keys = keys

    def tokens_key(self, username: str) -> str:
        return self.keys.user(username)

    def lookup(self, username: str) -> ApiUser | None:
        user = self.directory.get(username)
        return api_user(user) if user is not None else None

    def from_record(self, username: str, record: dict[str, str]) -> ApiUser | None:
        return api_user(User.from_fields(username, record)) if "id" in record else None


class LoadedUsers:
    """A host app's users, from its ``api_user_loader``."""

    known_by_redis = False

    def __init__(self, loader: ApiUserLoader, keys: RedisKeys) -> None:
        self.loader = loader
        self.keys = keys

    def tokens_key(self, username: str) -> str:
        return self.keys.challenge_tokens(username)

    def lookup(self, username: str) -> ApiUser | None:
        user = self.loader(username)
        if user is not None and not isinstance(user, ApiUser):
            raise TypeError(
                f"api_user_loader must return an ApiUser or None, not {type(user).__name__}"
            )
        return user

    def from_record(self, username: str, record: dict[str, str]) -> ApiUser | None:
        return self.lookup(username)


class HostOrDirectoryUsers:
    """The host's ``api_user_loader`` once it has one, else the Redis directory: a host names its
    loader with a decorator, usually after ``init_app``, so the choice is made at each call."""

    def __init__(
        self,
        loader_of: Callable[[], ApiUserLoader | None],
        directory: UserDirectory,
        keys: RedisKeys,
    ) -> None:
        self.loader_of = loader_of
        self.directory = DirectoryUsers(directory, keys)
        self.keys = keys

    def _source(self) -> UserSource:
        loader = self.loader_of()
        return LoadedUsers(loader, self.keys) if loader is not None else self.directory

    @property
    def known_by_redis(self) -> bool:  # type: ignore[override]
        return self._source().known_by_redis

    def tokens_key(self, username: str) -> str:
        return self._source().tokens_key(username)

    def lookup(self, username: str) -> ApiUser | None:
        return self._source().lookup(username)

    def from_record(self, username: str, record: dict[str, str]) -> ApiUser | None:
        return self._source().from_record(username, record)

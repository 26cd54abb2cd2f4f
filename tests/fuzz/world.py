"""The fuzzers' world: one app over fakeredis with known users and a pool of live credentials,
placeholders for those credentials that a generated request can carry, and the rules that say
which changes in Redis a request may make.

Generated requests mention credentials through :class:`Live` placeholders (a live API session,
the web login's cookie and CSRF token, a valid login proof, ...). They are resolved just before the
request is sent, after the world made sure they exist, so a shrunk example still means the same.

Redis is compared before and after every request (:func:`diff`); :func:`unexplained` answers the
changes that neither the operation that ran (recorded by a wrapper around every handler) nor its
outcome explains. A request that runs no handler may change nothing but the last-use times of the
live sessions it named.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import fakeredis
from argon2 import PasswordHasher

import operations
from tests.conftest import TEST_SETTINGS
from webservice.api.gateway import EXTENSION_KEY
from webservice.auth.web_login import SESSION_KEY as WEB_LOGIN_KEY
from webservice.standalone import create_app
from webservice.store.session_values import ClientInfo
from webservice.store.tokens import SessionId

PREFIX = "wsgate"
COOKIE = "wsgate_session"
PASSWORD = "fuzzing password 7d1c"
#: Own origin of the Flask test client.
OWN_ORIGIN = "http://localhost"
#: The pool of live API sessions kept for the fuzzers (two logins and one extension of the web
#: login).
POOL_SIZE = 3
#: Redis is emptied and the world rebuilt when it holds more keys than this (snapshots stay fast).
MAX_KEYS = 250


@dataclass(frozen=True)
class Live:
    """A placeholder for a credential of the world, resolved when the request is sent.

    ``kind``: ``api`` (a live API session id), ``dead`` (an ended one), ``shaped`` (a random id of
    the right shape), ``cookie`` (the web login's cookie), ``dead-cookie``, ``csrf`` (the web
    login's CSRF token), ``proof`` (a valid login proof for alice, made from a fresh challenge),
    ``stale-proof`` (a proof of alice's key over a token never issued), ``handle`` (the public
    handle of a live session), ``password`` (carol's password), ``key`` (alice's raw access key).
    """

    kind: str
    index: int = 0


class Recorder:
    """Which handlers ran during one request."""

    def __init__(self) -> None:
        self.ran: list[str] = []

    def wrap(self, op: Any) -> Any:
        handler = op.handler

        def recorded(context: Any, params: dict[str, Any]) -> Any:
            self.ran.append(op.name)
            return handler(context, params)

        recorded.__doc__ = handler.__doc__
        recorded.__module__ = handler.__module__
        return dataclasses.replace(op, handler=recorded)


class LogCapture(logging.Handler):
    """Every log record of the app, formatted with its traceback if it has one."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[tuple[logging.LogRecord, str]] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)
        with self._lock:
            self.records.append((record, text))

    def take(self) -> list[tuple[logging.LogRecord, str]]:
        with self._lock:
            taken, self.records = self.records, []
        return taken


def assert_clean_logs(records: list[tuple[logging.LogRecord, str]]) -> None:
    """No traceback, no error: every input the fuzzers send is handled input."""
    for record, text in records:
        assert record.exc_info is None, f"logged with a traceback: {text}"
        assert "Traceback" not in text, text
        assert record.levelno < logging.ERROR, text


class World:
    """An app over fakeredis, its users and a pool of live credentials."""

    def __init__(self, settings: dict[str, Any] | None = None) -> None:
        self.recorder = Recorder()
        self.server = fakeredis.FakeServer()
        self.redis = fakeredis.FakeRedis(server=self.server, decode_responses=True)
        #: Answers bytes: for snapshots, which include the web sessions' msgpack data.
        self.raw_redis = fakeredis.FakeRedis(server=self.server)
        self.app = create_app(
            {**TEST_SETTINGS, **(settings or {})},
            redis_client=self.redis,
            web_session_client=fakeredis.FakeRedis(server=self.server),
            operations=[self.recorder.wrap(op) for op in operations.BUILTIN_OPERATIONS],
        )
        self.gateway = self.app.extensions[EXTENSION_KEY]
        # Cheap Argon2 parameters for the fuzzers' web logins (verification reads them from the
        # hash), so that rebuilding the web login after a fuzzed logout costs little.
        self.gateway.users.hasher = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
        self.client = self.app.test_client(use_cookies=False)
        self.logs = LogCapture()
        self.rebuilds = 0
        self.stats: Counter[str] = Counter()
        self._build()

    # --- building ----------------------------------------------------------------------------

    def _build(self) -> None:
        self.redis.flushall()
        users = self.gateway.users
        self.alice = users.add("alice")
        self.bob = users.add("bob")
        users.set_active("bob", False)
        self.dave = users.add("dave")
        self.redis.hset(self.gateway.keys.user("dave"), "key", "")
        self.carol = users.add("carol", PASSWORD)
        self.pool: list[str] = []
        self.dead: list[str] = []
        self.cookie = ""
        self.csrf = ""
        self.dead_cookie = "D" * 43
        self.rebuilds += 1

    def refresh(self, reset_limits: bool) -> None:
        """Makes every pooled credential live again, and keeps Redis small."""
        if self.redis.dbsize() > MAX_KEYS:
            self._build()
        if reset_limits:
            self._reset_limits()
        if not self.cookie or self._check_web() is None:
            self._web_login()
        live = []
        for session_id in self.pool:
            if self.gateway.sessions.validate(session_id) is not None:
                live.append(session_id)
            else:
                self.dead.append(session_id)
        self.dead = self.dead[-5:]
        self.pool = live
        while len(self.pool) < POOL_SIZE - 1:
            self.pool.append(self._api_login())
        if len(self.pool) < POOL_SIZE:
            self.pool.append(self._extend_web())

    def _api_login(self) -> str:
        gateway = self.gateway
        challenge = gateway.logins.challenge("alice")
        assert challenge is not None
        session_id = SessionId.for_challenge(challenge.token)
        opened = gateway.sessions.open_from_challenge(
            challenge.token, session_id, self.alice.id, "alice", ClientInfo("10.0.0.1", "fuzz pool")
        )
        assert opened
        return str(session_id)

    def _check_web(self) -> Any:
        root = self._web_root()
        if root is None:
            return None
        return self.gateway.sessions.check(root, "web")

    def _web_root(self) -> SessionId | None:
        """The web login the browser's session data names, bound to its session id
        (webservice/auth/web_login.py)."""
        raw = self.app.session_interface.client.get(
            self.app.session_interface._get_store_id(self.cookie)
        )
        if raw is None:
            return None
        link = self.app.session_interface.serializer.decode(raw).get(WEB_LOGIN_KEY)
        parsed = SessionId.parse(link["id"]) if link else None
        return SessionId(parsed.family_id, parsed.secret + self.cookie) if parsed else None

    def _reset_limits(self) -> None:
        for key in self.redis.scan_iter(f"{PREFIX}:login-failures:*"):
            self.redis.delete(key)
        for key in self.redis.scan_iter(f"{PREFIX}:rate:*"):
            self.redis.delete(key)

    def _web_login(self) -> None:
        client = self.app.test_client()
        answer = self._post_login(client)
        if answer.status_code == 429:
            # Cases that keep the limits can use up this account's with wrong passwords: the
            # world's own login is not what they test.
            self._reset_limits()
            answer = self._post_login(client)
        assert answer.status_code == 302, answer.get_data(as_text=True)
        cookie = client.get_cookie(COOKIE)
        assert cookie is not None
        if self.cookie:
            self.dead_cookie = self.cookie
        self.cookie = cookie.value
        page = client.get("/").get_data(as_text=True)
        self.csrf = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)

    @staticmethod
    def _post_login(client: Any) -> Any:
        page = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        return client.post("/login", data={
            "csrf_token": token, "username": "carol", "password": PASSWORD})

    def _extend_web(self) -> str:
        root = self._web_root()
        assert root is not None
        added = SessionId.new(root.family_id)
        extended = self.gateway.sessions.extend(root, added, ClientInfo("10.0.0.2", "fuzz pool"))
        assert extended is not None
        return str(added)

    # --- resolving placeholders ------------------------------------------------------------------

    def resolve(self, value: Any) -> Any:
        if isinstance(value, Live):
            return self._value_of(value)
        if isinstance(value, dict):
            return {self.resolve(k): self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if isinstance(value, tuple):
            return tuple(self.resolve(item) for item in value)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return dataclasses.replace(value, **{
                field.name: self.resolve(getattr(value, field.name))
                for field in dataclasses.fields(value)
            })
        return value

    def _value_of(self, live: Live) -> str:
        kind = live.kind
        if kind == "api":
            self.stats["live session"] += 1
            return self.pool[live.index % len(self.pool)]
        if kind == "dead":
            return self.dead[live.index % len(self.dead)] if self.dead else "x" * 22 + "." + "y" * 43
        if kind == "shaped":
            digest = hashlib.sha256(str(live.index).encode()).hexdigest()
            return f"{digest[:22]}.{(digest * 2)[:43]}"
        if kind == "cookie":
            self.stats["live cookie"] += 1
            return self.cookie
        if kind == "dead-cookie":
            return self.dead_cookie
        if kind == "csrf":
            return self.csrf
        if kind == "proof":
            self.stats["valid proof"] += 1
            challenge = self.gateway.logins.challenge("alice")
            assert challenge is not None
            return hashlib.md5((challenge.token + self.alice.access_key).encode()).hexdigest()
        if kind == "broken-proof":
            # alice has a live token, and the proof is not Unicode (only JSON can carry it whole;
            # query and form carry its UTF-8 bytes as they are): it must be compared, not crash.
            self.stats["proof that is not Unicode"] += 1
            assert self.gateway.logins.challenge("alice") is not None
            return "0" * 31 + "\udfff"
        if kind == "stale-proof":
            return hashlib.md5(("0" * 32 + self.alice.access_key).encode()).hexdigest()
        if kind == "handle":
            views = self.gateway.sessions.list_for_user(self.alice.id) + \
                self.gateway.sessions.list_for_user(self.carol.id)
            return views[live.index % len(views)].handle if views else "nohandle:00000000"
        if kind == "password":
            return PASSWORD
        if kind == "key":
            return self.alice.access_key
        raise AssertionError(f"unknown placeholder {kind}")

    def secrets(self) -> list[str]:
        """Values no answer's error message and no log line may ever contain."""
        values = [self.alice.access_key, self.bob.access_key, self.carol.access_key, PASSWORD,
                  self.cookie, self.csrf]
        for session_id in self.pool:
            values += [session_id, session_id.partition(".")[2]]
        return [value for value in values if value]

    @contextmanager
    def capturing_logs(self) -> Iterator[LogCapture]:
        """The root logger's records and those of loggers that keep theirs (the request log)."""
        hosts = [logging.getLogger()] + [
            logger for logger in logging.root.manager.loggerDict.values()
            if isinstance(logger, logging.Logger) and not logger.propagate
        ]
        for host in hosts:
            host.addHandler(self.logs)
        try:
            yield self.logs
        finally:
            for host in hosts:
                host.removeHandler(self.logs)


# --- Redis before and after ---------------------------------------------------------------------


def _text(value: Any) -> Any:
    """Bytes as text (web sessions are msgpack: kept byte for byte through surrogateescape)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    if isinstance(value, dict):
        return {_text(k): _text(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_text(item) for item in value)
    return value


def snapshot(redis: Any) -> dict[str, tuple[str, Any]]:
    """Every key with its type and value; ``redis`` answers bytes."""
    data: dict[str, tuple[str, Any]] = {}
    for raw_key in redis.scan_iter(count=1000):
        kind = redis.type(raw_key).decode()
        if kind == "string":
            value: Any = redis.get(raw_key)
        elif kind == "hash":
            value = redis.hgetall(raw_key)
        elif kind == "zset":
            value = dict(redis.zrange(raw_key, 0, -1, withscores=True))
        elif kind == "set":
            value = sorted(redis.smembers(raw_key))
        elif kind == "list":
            value = redis.lrange(raw_key, 0, -1)
        elif kind == "stream":
            value = redis.xrange(raw_key)
        else:
            value = repr(kind)
        data[_text(raw_key)] = (kind, _text(value))
    return data


@dataclass
class Diff:
    added: dict[str, tuple[str, Any]]
    removed: dict[str, tuple[str, Any]]
    changed: dict[str, tuple[tuple[str, Any], tuple[str, Any]]]

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def keys(self) -> set[str]:
        return set(self.added) | set(self.removed) | set(self.changed)

    def describe(self) -> str:
        lines = [f"+ {key}" for key in sorted(self.added)]
        lines += [f"- {key}" for key in sorted(self.removed)]
        lines += [f"~ {key}" for key in sorted(self.changed)]
        return "\n".join(lines)


def diff(before: dict[str, Any], after: dict[str, Any]) -> Diff:
    return Diff(
        added={key: after[key] for key in after.keys() - before.keys()},
        removed={key: before[key] for key in before.keys() - after.keys()},
        changed={
            key: (before[key], after[key])
            for key in before.keys() & after.keys()
            if before[key] != after[key]
        },
    )


FAMILY = re.compile(rf"^{PREFIX}:\{{[^}}]+\}}:f$")
PENDING = re.compile(rf"^{PREFIX}:\{{[^}}]+\}}:c$")
USER = re.compile(rf"^{PREFIX}:user:.+$")
USER_INDEX = re.compile(rf"^{PREFIX}:families:\d+$")
WEB = re.compile(rf"^{PREFIX}:web:.+$")
DECOY = re.compile(rf"^\{{{PREFIX}:user:.+\}}:decoy$")
SPENT = re.compile(rf"^\{{{PREFIX}:user:.+\}}:spent$")
AUDIT = re.compile(rf"^{PREFIX}:audit$")
FAILURES = re.compile(rf"^{PREFIX}:login-failures:.+$")
RATE = re.compile(rf"^{PREFIX}:rate:getchallenge:.+$")
ADDRESS_CHALLENGES = re.compile(rf"^{PREFIX}:challenges:address:.+$")
KNOWN_ADDRESSES = re.compile(rf"^{PREFIX}:known-addresses:.+$")


def is_touch(change: tuple[tuple[str, Any], tuple[str, Any]]) -> bool:
    """A family whose only change is later last-use times of members (a session check)."""
    (kind_before, before), (kind_after, after) = change
    if kind_before != "hash" or kind_after != "hash" or before.keys() != after.keys():
        return False
    for field in before:
        if before[field] != after[field]:
            if not field.startswith("l:") or int(after[field]) < int(before[field]):
                return False
    return True


def only_token_fields_changed(change: tuple[tuple[str, Any], tuple[str, Any]]) -> bool:
    """A user record whose only change is in its challenge tokens (fields ``t:<token>``)."""
    (_, before), (_, after) = change
    fields = before.keys() | after.keys()
    return all(
        field.startswith("t:") for field in fields if before.get(field) != after.get(field)
    )


def token_spent(change: tuple[tuple[str, Any], tuple[str, Any]]) -> bool:
    """A record whose only change is one challenge token gone: the login that used it moved it
    to the name's spent tokens (SPENT)."""
    (_, before), (_, after) = change
    fields = before.keys() | after.keys()
    changed = [field for field in fields if before.get(field) != after.get(field)]
    return (
        len(changed) == 1 and changed[0].startswith("t:") and changed[0] in before
        and changed[0] not in after
    )


def audit_appended(change: tuple[tuple[str, Any], tuple[str, Any]]) -> bool:
    (_, before), (_, after) = change
    return after[: len(before)] == before and len(after) > len(before)


def unexplained(
    changes: Diff, ran: list[str], success: bool, web: bool = False, web_login: bool = False
) -> list[str]:
    """The changes in ``changes`` that the handlers in ``ran`` and the outcome do not explain.

    ``web``: the request went to the web UI; ``web_login``: it may have logged in or out there
    (a live cookie, or carol's password).
    """
    op = ran[0] if ran else None
    problems: list[str] = []
    assert len(ran) <= 1, ran

    def ok_added(key: str) -> bool:
        if op == "getchallenge" and ADDRESS_CHALLENGES.match(key):
            return True  # the address's capped set of challenges (kept or withdrawn)
        if op == "login" and success and KNOWN_ADDRESSES.match(key):
            return True  # the address the user logged in from, remembered
        if web and web_login and KNOWN_ADDRESSES.match(key):
            return True
        if op == "getchallenge" and success:
            return bool(PENDING.match(key) or DECOY.match(key) or RATE.match(key))
        if op == "getchallenge":
            return bool(RATE.match(key))
        if op == "login" and success:
            return bool(
                FAMILY.match(key) or USER_INDEX.match(key) or AUDIT.match(key) or SPENT.match(key)
            )
        if op == "login":
            return bool(FAILURES.match(key) or AUDIT.match(key))
        if op in ("extendsession", "logout", "endsession", "endallsessions") and success:
            return bool(AUDIT.match(key))
        if web:
            if WEB.match(key):
                return True
            if AUDIT.match(key) or FAILURES.match(key):
                return True
            if web_login and (FAMILY.match(key) or USER_INDEX.match(key)):
                return True
        return False

    def ok_removed(key: str) -> bool:
        if op == "getchallenge" and ADDRESS_CHALLENGES.match(key):
            return True
        if op == "getchallenge" and success:
            # The oldest of too many outstanding tokens, withdrawn with their pending challenge
            # (a decoy record whose last token goes goes with it).
            return bool(PENDING.match(key) or DECOY.match(key))
        if op == "login" and success:
            # The used token's entry left its address's set (its last one: the set goes); the
            # name's spent tokens all expired (the used one too).
            return bool(
                PENDING.match(key) or FAILURES.match(key) or ADDRESS_CHALLENGES.match(key)
                or SPENT.match(key)
            )
        if op in ("logout", "endsession", "endallsessions") and success:
            return bool(FAMILY.match(key) or USER_INDEX.match(key))
        if op == "listsessions":
            return bool(USER_INDEX.match(key))  # every indexed family was found ended
        if web and web_login:
            return bool(FAMILY.match(key) or USER_INDEX.match(key) or WEB.match(key)
                        or FAILURES.match(key))
        return False

    def ok_changed(key: str, change: tuple[tuple[str, Any], tuple[str, Any]]) -> bool:
        if FAMILY.match(key) and is_touch(change):
            return True
        if op == "getchallenge" and ADDRESS_CHALLENGES.match(key):
            return True
        if KNOWN_ADDRESSES.match(key) and ((op == "login" and success) or (web and web_login)):
            return True
        if op == "getchallenge" and success:
            return bool(
                (USER.match(key) and only_token_fields_changed(change))
                or DECOY.match(key) or RATE.match(key)
            )
        if op == "getchallenge":
            return bool(RATE.match(key))
        if op == "login" and success:
            return bool(
                USER_INDEX.match(key) or (AUDIT.match(key) and audit_appended(change))
                or FAILURES.match(key) or ADDRESS_CHALLENGES.match(key) or SPENT.match(key)
                or (USER.match(key) and token_spent(change))
            )
        if op == "login":
            return bool(FAILURES.match(key) or (AUDIT.match(key) and audit_appended(change)))
        if op == "extendsession" and success:
            return bool(FAMILY.match(key) or (AUDIT.match(key) and audit_appended(change)))
        if op in ("logout", "endsession", "endallsessions") and success:
            return bool(USER_INDEX.match(key) or (AUDIT.match(key) and audit_appended(change)))
        if op == "listsessions":
            return bool(USER_INDEX.match(key))
        if web:
            if WEB.match(key) or FAILURES.match(key):
                return True
            if AUDIT.match(key) and audit_appended(change):
                return True
            if web_login and (FAMILY.match(key) or USER_INDEX.match(key)):
                return True
        return False

    for key in sorted(changes.added):
        if not ok_added(key):
            problems.append(f"+ {key} {changes.added[key]!r:.200}")
    for key in sorted(changes.removed):
        if not ok_removed(key):
            problems.append(f"- {key}")
    for key, change in sorted(changes.changed.items()):
        if not ok_changed(key, change):
            problems.append(f"~ {key}: {change[0]!r:.300} -> {change[1]!r:.300}")
    return problems

"""The session store: session families and their members in Redis.

A **family** is the unit of login. ``login`` starts a family with one API session; a web-UI login
starts a family whose first member is the web session, and ``extendsession`` adds API sessions to
it. The family is one Redis hash, ``P:{F}:f``::

    u   numeric user id          n   username
    x   absolute expiry (ms)     r   the root member (the one that started the family)
    l:<m>  last use of member m (ms)
    i:<m>  "<created ms>\\x1f<kind>\\x1f<address>\\x1f<user agent>" of member m

``m`` is the hash of the member's secret (tokens.hash_secret), never the secret itself.

Because the whole family is one key, ending it is one ``DEL``: every member dies at the same
instant for every worker, and a script that adds a member to a family that is gone finds nothing
to add to. Timeouts are enforced on every check: the absolute expiry of the family, the idle time
of each member, and the idle time of the root, which ends the family (the key's own expiry tracks
it, refreshed whenever the root is used). All times come from the Redis server's clock, so hosts
with skewed clocks agree.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from webservice.store.keys import RedisKeys
from webservice.store.client import LUA_NOW_MS, LuaScript, RedisClient, run_pipeline
from webservice.store.tokens import SessionId, family_id_for_challenge, is_family_id, new_family_id

#: Characters of the member hash that a public handle carries.
HANDLE_MEMBER_CHARS = 8
#: The largest user agent kept with a session; the rest is cut (it is for display only).
MAX_USER_AGENT = 200
_FIELD_SEPARATOR = "\x1f"


class PipelineExtra(Protocol):
    """Commands a caller adds to the one round trip in which a family starts, gains a member or
    ends (an audit entry, a counter reset), so that they cost no round trip of their own.

    ``queue`` is given the handle and username of the member started, added or ended, when the
    store knows them (``None`` otherwise, e.g. when many families end at once). It may be called
    again for the same change: a pipeline that met a forgotten Lua script is sent again
    (redis_client.run_pipeline), and the commands of the first send have then already run, so an
    extra must not queue a command that cannot be repeated (an XADD) a second time.
    ``sent`` is given the replies to the commands it queued for the send that went through.
    """

    def queue(self, pipe: Any, handle: str | None, username: str | None) -> None: ...

    def sent(self, replies: list[Any]) -> None: ...


@dataclass(frozen=True)
class ClientInfo:
    """Who is calling: shown in session listings and the audit trail."""

    address: str
    user_agent: str

    def packed(self, kind: str) -> str:
        address = self.address.replace(_FIELD_SEPARATOR, " ")
        agent = self.user_agent[:MAX_USER_AGENT].replace(_FIELD_SEPARATOR, " ")
        return _FIELD_SEPARATOR.join((kind, address, agent))


def handle_of(family_id: str, member: str) -> str:
    """A member's public name: safe to show and to log, useless as a credential."""
    return f"{family_id}:{member[:HANDLE_MEMBER_CHARS]}"


@dataclass(frozen=True)
class Session:
    """A live, validated session member."""

    user_id: int
    username: str
    family_id: str
    member: str

    @property
    def handle(self) -> str:
        return handle_of(self.family_id, self.member)


@dataclass(frozen=True)
class SessionView:
    """One live member of a user's families, as the sessions page and ``listsessions`` show it."""

    handle: str
    family_id: str
    kind: str
    #: Whether the member shares its family with others (ending one ends all of them).
    linked: bool
    created: int
    last_used: int
    address: str
    user_agent: str

    def as_dict(self) -> dict[str, object]:
        return {
            "handle": self.handle,
            "kind": self.kind,
            "linked": self.linked,
            "created": self.created // 1000,
            "lastUsed": self.last_used // 1000,
            "address": self.address,
            "userAgent": self.user_agent,
        }


# The member check shared by the scripts that act for a member. With KEYS[1] the family,
# ARGV[1] the member and ARGV[2] the idle timeout (ms), it returns false from the script unless the
# family is before its absolute expiry and the member was used within the idle timeout; a member
# found idle is removed, and the family is deleted when that member is its root or it has expired.
# Otherwise it marks the member used, pushes the key's expiry to min(absolute expiry, now + idle)
# when the member is the root, and leaves ``family`` = the HMGET of u, n, x, r and ``is_root``.
_LUA_CHECK_MEMBER = """
local family = redis.call('HMGET', KEYS[1], 'u', 'n', 'x', 'r', 'l:' .. ARGV[1])
if not family[5] then return false end
local idle = tonumber(ARGV[2])
local expiry = tonumber(family[3])
local is_root = family[4] == ARGV[1]
if now >= expiry or (is_root and now - tonumber(family[5]) > idle) then
  redis.call('DEL', KEYS[1])
  return false
end
if now - tonumber(family[5]) > idle then
  redis.call('HDEL', KEYS[1], 'l:' .. ARGV[1], 'i:' .. ARGV[1])
  return false
end
redis.call('HSET', KEYS[1], 'l:' .. ARGV[1], ms(now))
if is_root then
  redis.call('PEXPIREAT', KEYS[1], ms(math.min(expiry, now + idle)))
end
"""

# Writes a new family into ``family_key`` with root member ARGV[3]. ARGV: username, user id,
# member, packed client info, idle ms, absolute ms. The key expires when the root idles out.
_LUA_CREATE_FAMILY = """
local expiry = now + tonumber(ARGV[6])
local m = ARGV[3]
redis.call('HSET', family_key, 'u', ARGV[2], 'n', ARGV[1], 'x', ms(expiry), 'r', m,
  'l:' .. m, ms(now), 'i:' .. m, ms(now) .. '\\31' .. ARGV[4])
redis.call('PEXPIREAT', family_key, ms(math.min(expiry, now + tonumber(ARGV[5]))))
return 1
"""


class SessionStore:
    """Creates, validates, lists and ends session families."""

    # Validates member ARGV[1] of family KEYS[1] (idle timeout ARGV[2] ms) and marks it used.
    # Guarantees: answers {user id, username} only for a live member of a live family, enforcing
    # the absolute and idle timeouts at this very moment (see _LUA_CHECK_MEMBER).
    TOUCH = LuaScript(LUA_NOW_MS + _LUA_CHECK_MEMBER + "return {family[1], family[2]}")

    # Adds API member ARGV[3] (client info ARGV[4]) to family KEYS[1] on behalf of its root
    # member ARGV[1] (idle timeout ARGV[2] ms).
    # Guarantees: the member is added only if the family is live and ARGV[1] is its live root, in
    # the same step; a family that a logout has deleted can never gain a member.
    EXTEND = LuaScript(
        LUA_NOW_MS
        + _LUA_CHECK_MEMBER
        + """
if not is_root then return false end
redis.call('HSET', KEYS[1], 'l:' .. ARGV[3], ms(now), 'i:' .. ARGV[3], ms(now) .. '\\31' .. ARGV[4])
return {family[1], family[2]}
"""
    )

    # Turns the pending challenge KEYS[1] into the new family KEYS[2] with one API member.
    # ARGV as _LUA_CREATE_FAMILY.
    # Guarantees: a challenge yields at most one family, ever: the pending challenge must exist
    # for this very user and is deleted in the same step that creates the family.
    OPEN_FROM_CHALLENGE = LuaScript(
        LUA_NOW_MS
        + """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
redis.call('DEL', KEYS[1])
local family_key = KEYS[2]
"""
        + _LUA_CREATE_FAMILY
    )

    # Starts family KEYS[1] with root member ARGV[3] (a web login). ARGV as _LUA_CREATE_FAMILY.
    # Guarantees: never overwrites an existing family.
    OPEN = LuaScript(
        LUA_NOW_MS
        + """
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local family_key = KEYS[1]
"""
        + _LUA_CREATE_FAMILY
    )

    # Deletes family KEYS[1] if it belongs to user ARGV[1] and has a member whose hash starts with
    # ARGV[2] (any member when ARGV[2] is empty).
    # Guarantees: a user can end only their own families, all members at once.
    END_OWNED = LuaScript(
        """
if redis.call('HGET', KEYS[1], 'u') ~= ARGV[1] then return 0 end
if ARGV[2] ~= '' then
  local found = false
  for _, name in ipairs(redis.call('HKEYS', KEYS[1])) do
    if string.sub(name, 1, 2 + #ARGV[2]) == 'i:' .. ARGV[2] then found = true break end
  end
  if not found then return 0 end
end
return redis.call('DEL', KEYS[1])
"""
    )

    def __init__(
        self,
        client: RedisClient,
        keys: RedisKeys,
        *,
        idle_timeout: int,
        absolute_timeout: int,
    ) -> None:
        self.client = client
        self.keys = keys
        self.idle_ms = int(idle_timeout * 1000)
        self.absolute_ms = int(absolute_timeout * 1000)

    # --- checking ------------------------------------------------------------------------------

    def validate(self, raw_session_id: object) -> Session | None:
        """The live session named by ``raw_session_id``, touched; ``None`` for anything else.

        Ids that do not have the exact shape the gateway hands out are refused without asking Redis.
        """
        session_id = SessionId.parse(raw_session_id)
        return self.check(session_id) if session_id is not None else None

    def check(self, session_id: SessionId) -> Session | None:
        """The live session ``session_id``, touched (one round trip); ``None`` if it is not live."""
        member = session_id.member
        answer = self.TOUCH(
            self.client, [self.keys.family(session_id.family_id)], [member, self.idle_ms]
        )
        if not answer:
            return None
        return Session(int(answer[0]), answer[1], session_id.family_id, member)

    # --- starting ------------------------------------------------------------------------------

    def open_from_challenge(
        self,
        token: str,
        user_id: int,
        username: str,
        client_info: ClientInfo,
        also: PipelineExtra | None = None,
    ) -> SessionId | None:
        """Consumes challenge ``token`` and starts an API family; ``None`` if it was used or expired.

        One round trip: the family is created and indexed under its user in one pipeline, with the
        commands of ``also``. The token itself stays in the user's record until it expires; its
        pending challenge is gone, so a replay is refused here.
        """
        session_id = SessionId.new(family_id_for_challenge(token))
        family = session_id.family_id
        opened = self._open(
            self.OPEN_FROM_CHALLENGE,
            [self.keys.pending_challenge(family), self.keys.family(family)],
            session_id,
            user_id,
            username,
            client_info.packed("api"),
            also,
        )
        return session_id if opened else None

    def open_web(
        self,
        web_secret: str,
        user_id: int,
        username: str,
        client_info: ClientInfo,
        also: PipelineExtra | None = None,
    ) -> Session:
        """Starts a web family whose root is the web session with secret ``web_secret``, sending
        the commands of ``also`` in the same round trip."""
        session_id = SessionId(new_family_id(), web_secret)
        opened = self._open(
            self.OPEN,
            [self.keys.family(session_id.family_id)],
            session_id,
            user_id,
            username,
            client_info.packed("web"),
            also,
        )
        if not opened:
            raise RuntimeError("a fresh 128-bit family id collided with a live family")
        return Session(user_id, username, session_id.family_id, session_id.member)

    def extend(
        self, root: SessionId, client_info: ClientInfo, also: PipelineExtra | None = None
    ) -> tuple[SessionId, Session] | None:
        """A new API session in the family of live root member ``root``; ``None`` if it is not live.

        The new session has its own secret: the root's (the web cookie's) is never handed out.
        The commands of ``also`` go in the same round trip (sent whether or not it is live).
        """
        added = SessionId.new(root.family_id)
        keys = [self.keys.family(root.family_id)]
        args = [root.member, self.idle_ms, added.member, client_info.packed("api")]
        if also is None:
            answer = self.EXTEND(self.client, keys, args)
        else:

            def build(pipe: Any) -> None:
                self.EXTEND.queue(pipe, keys, args)
                also.queue(pipe, handle_of(root.family_id, added.member), None)

            replies = run_pipeline(self.client, build, [self.EXTEND])
            answer = replies[0]
            also.sent(replies[1:])
        if not answer:
            return None
        return added, Session(int(answer[0]), answer[1], root.family_id, added.member)

    def _open(
        self,
        script: LuaScript,
        keys: list[str],
        session_id: SessionId,
        user_id: int,
        username: str,
        packed_info: str,
        also: PipelineExtra | None,
    ) -> bool:
        family = session_id.family_id
        index_key = self.keys.user_families(user_id)
        expiry_estimate = int(time.time() * 1000) + self.absolute_ms
        args = [username, user_id, session_id.member, packed_info, self.idle_ms, self.absolute_ms]

        def build(pipe: Any) -> None:
            script.queue(pipe, keys, args)
            pipe.zadd(index_key, {family: expiry_estimate}, nx=True)
            pipe.zremrangebyscore(index_key, "-inf", int(time.time() * 1000))
            if also is not None:
                also.queue(pipe, handle_of(family, session_id.member), username)

        replies = run_pipeline(self.client, build, [script])
        opened = replies[0]
        if also is not None:
            also.sent(replies[3:])
        if not opened and not self.client.exists(self.keys.family(family)):
            # Nothing was opened and no family of that id lives (a replayed token names one that
            # an earlier login opened): take back the index entry.
            self.client.zrem(index_key, family)
        return bool(opened)

    # --- listing -------------------------------------------------------------------------------

    def list_for_user(self, user_id: int) -> list[SessionView]:
        """Every live member of every family of the user, newest first."""
        index_key = self.keys.user_families(user_id)
        families = self.client.zrange(index_key, 0, -1)
        if not families:
            return []
        pipe = self.client.pipeline(transaction=False)
        for family in families:
            pipe.hgetall(self.keys.family(family))
        records = pipe.execute()
        gone = [family for family, record in zip(families, records) if not record]
        if gone:
            self.client.zrem(index_key, *gone)
        now_ms = int(time.time() * 1000)
        views = [
            view
            for family, record in zip(families, records)
            if record and record.get("u") == str(user_id)
            for view in self._members(family, record, now_ms)
        ]
        return sorted(views, key=lambda view: view.created, reverse=True)

    def _members(self, family: str, record: dict[str, str], now_ms: int) -> Iterable[SessionView]:
        members = [name[2:] for name in record if name.startswith("i:")]
        if int(record.get("x", 0)) <= now_ms:
            return
        for member in members:
            last_used = int(record.get(f"l:{member}", 0))
            if now_ms - last_used > self.idle_ms:
                continue
            created, kind, address, agent = record[f"i:{member}"].split(_FIELD_SEPARATOR, 3)
            yield SessionView(
                handle=handle_of(family, member),
                family_id=family,
                kind=kind,
                linked=len(members) > 1,
                created=int(created),
                last_used=last_used,
                address=address,
                user_agent=agent,
            )

    # --- ending --------------------------------------------------------------------------------

    def end_family(self, session: Session, also: PipelineExtra | None = None) -> None:
        """Ends the family of ``session`` and every member in it, at once (one round trip, which
        carries the commands of ``also``)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.delete(self.keys.family(session.family_id))
        pipe.zrem(self.keys.user_families(session.user_id), session.family_id)
        if also is not None:
            also.queue(pipe, session.handle, session.username)
        replies = pipe.execute()
        if also is not None:
            also.sent(replies[2:])

    def owner_of(self, handle: str) -> int | None:
        """The user id of the family a handle names, while it lives."""
        family = handle.partition(":")[0]
        owner = self.client.hget(self.keys.family(family), "u") if is_family_id(family) else None
        return int(owner) if owner else None

    def end_by_handle(
        self, user_id: int, handle: str, also: PipelineExtra | None = None
    ) -> bool:
        """Ends the family of the member named by ``handle`` if it is the user's; says whether.

        The commands of ``also`` are sent only when it was ended, with the index update.
        """
        family, _, member_prefix = handle.partition(":")
        if not is_family_id(family) or len(member_prefix) != HANDLE_MEMBER_CHARS:
            return False
        ended = self.END_OWNED(
            self.client, [self.keys.family(family)], [str(user_id), member_prefix]
        )
        if ended:
            pipe = self.client.pipeline(transaction=False)
            pipe.zrem(self.keys.user_families(user_id), family)
            if also is not None:
                also.queue(pipe, None, None)
            replies = pipe.execute()
            if also is not None:
                also.sent(replies[1:])
        return bool(ended)

    def end_all_for_user(
        self, user_id: int, keep_family: str | None = None, also: PipelineExtra | None = None
    ) -> int:
        """Ends every family of a user but ``keep_family``; answers how many were still alive.

        Each family ends atomically; a family started while this runs may survive (it began after
        the request to end all). The commands of ``also`` are sent with the deletions (on their
        own when there is nothing to delete).
        """
        index_key = self.keys.user_families(user_id)
        families = [f for f in self.client.zrange(index_key, 0, -1) if f != keep_family]
        if not families and also is None:
            return 0
        pipe = self.client.pipeline(transaction=False)
        for family in families:
            pipe.delete(self.keys.family(family))
        if families:
            pipe.zrem(index_key, *families)
        if also is not None:
            also.queue(pipe, None, None)
        replies = pipe.execute()
        own = len(families) + (1 if families else 0)
        if also is not None:
            also.sent(replies[own:])
        return sum(replies[: len(families)])

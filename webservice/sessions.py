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
from dataclasses import dataclass
from typing import Any

from webservice.keys import RedisKeys
from webservice.redis_client import LUA_NOW_MS, LuaScript, RedisClient, run_pipeline
from webservice.tokens import SessionId, family_id_for_challenge

#: The largest user agent kept with a session; the rest is cut (it is for display only).
MAX_USER_AGENT = 200
_FIELD_SEPARATOR = "\x1f"



@dataclass(frozen=True)
class ClientInfo:
    """Who is calling: shown in session listings and the audit trail."""

    address: str
    user_agent: str

    def packed(self, kind: str) -> str:
        address = self.address.replace(_FIELD_SEPARATOR, " ")
        agent = self.user_agent[:MAX_USER_AGENT].replace(_FIELD_SEPARATOR, " ")
        return _FIELD_SEPARATOR.join((kind, address, agent))


@dataclass(frozen=True)
class Session:
    """A live, validated session member."""

    user_id: int
    username: str
    family_id: str
    member: str

    @property
    def handle(self) -> str:
        """A public name for the member: safe to show and to log, useless as a credential."""
        return f"{self.family_id}:{self.member[:8]}"


class SessionStore:
    """Creates, validates and ends session families."""

    # Validates member ARGV[1] of family KEYS[1] and marks it used, in one step.
    # Guarantees: answers {user id, username} only when the family exists, is before its absolute
    # expiry, and the member exists and was used within ARGV[2] ms. A member found idle is removed;
    # when that member is the root, or the family is past its absolute expiry, the family is deleted.
    # Using the root pushes the key's expiry to min(absolute expiry, now + idle).
    TOUCH = LuaScript(
        LUA_NOW_MS
        + """
local f = redis.call('HMGET', KEYS[1], 'u', 'n', 'x', 'r', 'l:' .. ARGV[1])
if not f[5] then return false end
local idle = tonumber(ARGV[2])
local expiry = tonumber(f[3])
if now >= expiry then
  redis.call('DEL', KEYS[1])
  return false
end
local is_root = f[4] == ARGV[1]
if now - tonumber(f[5]) > idle then
  if is_root then
    redis.call('DEL', KEYS[1])
  else
    redis.call('HDEL', KEYS[1], 'l:' .. ARGV[1], 'i:' .. ARGV[1])
  end
  return false
end
redis.call('HSET', KEYS[1], 'l:' .. ARGV[1], ms(now))
if is_root then
  redis.call('PEXPIREAT', KEYS[1], ms(math.min(expiry, now + idle)))
end
return {f[1], f[2]}
"""
    )

    # Turns the pending challenge KEYS[1] into the new family KEYS[2] with one API member.
    # ARGV: username, user id, member, packed client info, idle ms, absolute ms.
    # Guarantees: a challenge yields at most one family, ever: the pending challenge must exist
    # for this very user and is deleted in the same step that creates the family.
    OPEN_FROM_CHALLENGE = LuaScript(
        LUA_NOW_MS
        + """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
redis.call('DEL', KEYS[1])
local expiry = now + tonumber(ARGV[6])
local m = ARGV[3]
redis.call('HSET', KEYS[2], 'u', ARGV[2], 'n', ARGV[1], 'x', ms(expiry), 'r', m,
  'l:' .. m, ms(now), 'i:' .. m, ms(now) .. '\\31' .. ARGV[4])
redis.call('PEXPIREAT', KEYS[2], ms(math.min(expiry, now + tonumber(ARGV[5]))))
return 1
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

    def validate(self, raw_session_id: object) -> Session | None:
        """The live session named by ``raw_session_id``, touched; ``None`` for anything else.

        Ids that do not have the exact shape the gateway hands out are refused without asking Redis.
        """
        session_id = SessionId.parse(raw_session_id)
        if session_id is None:
            return None
        member = session_id.member
        answer = self.TOUCH(
            self.client, [self.keys.family(session_id.family_id)], [member, self.idle_ms]
        )
        if not answer:
            return None
        return Session(int(answer[0]), answer[1], session_id.family_id, member)

    def open_from_challenge(
        self, token: str, user_id: int, username: str, client_info: ClientInfo
    ) -> SessionId | None:
        """Consumes challenge ``token`` and starts an API family; ``None`` if it was used or expired.

        One round trip: the family is created and indexed under its user in one pipeline. The
        token itself stays in the user's record until it expires; its pending challenge is gone, so
        a replay is refused here.
        """
        session_id = SessionId.new(family_id_for_challenge(token))
        family = session_id.family_id
        index_key = self.keys.user_families(user_id)
        expiry_estimate = int(time.time() * 1000) + self.absolute_ms

        def build(pipe: Any) -> None:
            self.OPEN_FROM_CHALLENGE.queue(
                pipe,
                [self.keys.pending_challenge(family), self.keys.family(family)],
                [
                    username,
                    user_id,
                    session_id.member,
                    client_info.packed("api"),
                    self.idle_ms,
                    self.absolute_ms,
                ],
            )
            pipe.zadd(index_key, {family: expiry_estimate})

        opened = run_pipeline(self.client, build, [self.OPEN_FROM_CHALLENGE])[0]
        if not opened:
            # The token was consumed by a concurrent login (or expired): undo the index entry.
            self.client.zrem(index_key, family)
            return None
        return session_id

    def end_family(self, session: Session) -> None:
        """Ends the family of ``session`` and every member in it, at once (one round trip)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.delete(self.keys.family(session.family_id))
        pipe.zrem(self.keys.user_families(session.user_id), session.family_id)
        pipe.execute()

    def end_all_for_user(self, user_id: int) -> int:
        """Ends every family of a user; answers how many were still alive.

        A family started while this runs may survive it: it began after the request to end all.
        """
        index_key = self.keys.user_families(user_id)
        families = self.client.zrange(index_key, 0, -1)
        if not families:
            return 0
        pipe = self.client.pipeline(transaction=False)
        for family in families:
            pipe.delete(self.keys.family(family))
        pipe.zrem(index_key, *families)
        return sum(pipe.execute()[:-1])

"""The session store: session families and their members in Redis.

A **family** is the unit of login. ``login`` starts a family with one API session; a web-UI login
starts a family whose first member is the web session, and ``extendsession`` adds API sessions to
it. The family is one Redis hash, ``P:{F}:f``::

    u   numeric user id          n   username
    x   absolute expiry (ms)     r   the root member (the one that started the family)
    w   "1" when the root is a web login (whose secret then authenticates web requests only)
    l:<m>  last use of member m (ms)
    i:<m>  "<created ms>\\x1f<kind>\\x1f<address>\\x1f<user agent>" of member m
    o   the members extendsession added, oldest first, each followed by a space (stale names
        of members that ended alone included, until the cap's scan or a rebuild drops them)

``m`` is the hash of the member's secret (tokens.hash_secret), never the secret itself.

Because the whole family is one key, ending it is one ``DEL``: every member dies at the same
instant for every worker, and a script that adds a member to a family that is gone finds nothing
to add to. Timeouts are enforced on every check: the absolute expiry of the family, the idle time
of each member, and the idle time of the root, which ends the family (the key's own expiry tracks
it, refreshed whenever the root is used). All times come from the Redis server's clock, so hosts
with skewed clocks agree.

With REDIS_WAIT_REPLICAS (confirmation.py), every change here is confirmed by the replicas before
it is acknowledged, and a family that a revocation ends is not deleted but renamed to its *ended
marker* ``P:{F}:e`` for REDIS_WAIT_RETRY_GRACE: a revocation retried because its confirmation came
too late finds it there and is told it succeeded (:meth:`SessionStore.recently_ended`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

from webservice.store.client import RedisClient, is_cluster
from webservice.store.confirmation import NotConfirmed, Replicas
from webservice.store.family_endings import (
    ExcessClaim,
    FamilyCap,
    FamilyEnding,
    Reader,
    Unindex,
    counted,
)
from webservice.store.family_lua import CAPPED_OPEN, FAMILY_FUNCTIONS, TIMED_OUT, StreamEntry
from webservice.store.keys import RedisKeys
from webservice.store.round_trip import Change, Participant, send
from webservice.store.scripts import CLOCK, LuaScript
from webservice.store.session_values import (
    FIELD_SEPARATOR,
    ClientInfo,
    Extension,
    Session,
    SessionView,
    TimedOut,
)
from webservice.store.tokens import (
    HANDLE_MEMBER_CHARS,
    SessionId,
    family_of,
    handle_of,
    is_family_id,
)


class SessionStore:
    """Creates, validates, lists and ends session families."""

    #: KEYS: the family. ARGV: the member, the idle timeout (ms), the kind asked ('web'|'api'),
    #: how long a timed-out record is kept (ms, check_member's ``keep``).
    #: Returns {user id, username}; else {'ended', 'expired' or 'idle', user id, username} when
    #: this check found the whole family timed out (and ended it), 'expired' or 'idle' when it
    #: found the member so (and removed it), or nil (unknown, or ended earlier).
    #: Guarantees: answers only for a live member of that kind in a live family, enforcing the
    #: absolute and idle timeouts at this very moment (check_member), and marks it used.
    TOUCH = LuaScript(
        CLOCK,
        FAMILY_FUNCTIONS,
        """
local family, why, ended = check_member(KEYS[1], ARGV[1], tonumber(ARGV[2]), ARGV[3], nil,
  tonumber(ARGV[4]))
if ended then return {'ended', why, ended[1], ended[2]} end
if not family then return why or false end
return {family[1], family[2]}
""",
    )

    #: KEYS: the family; for an entry, the stream. ARGV: the member, the idle timeout (ms), the
    #: kind asked ('api'), the ``keep`` ms of check_member, the user family index key without its
    #: user id (keys.user_families_prefix), the family id; for an entry, the entry
    #: (StreamEntry.arguments).
    #: Returns {user id, username} when it ended the family; else as TOUCH.
    #: Guarantees: what TOUCH's check of the member and then end_family do, in one step: the whole
    #: family ends at once if that member of it is live, with its index entry, and the entry is
    #: added (its user the family's) exactly when it ends.
    #: A single Redis only: the index key is built here from the user id the family holds, which
    #: a Redis Cluster, where a script may touch only the keys it is given (in one slot), refuses.
    END_OWN = LuaScript(
        CLOCK,
        FAMILY_FUNCTIONS,
        """
local family, why, ended = check_member(KEYS[1], ARGV[1], tonumber(ARGV[2]), ARGV[3], nil,
  tonumber(ARGV[4]), true)
if ended then return {'ended', why, ended[1], ended[2]} end
if not family then return why or false end
redis.call('DEL', KEYS[1])
redis.call('ZREM', ARGV[5] .. family[1], ARGV[6])
if KEYS[2] then append_entry(KEYS[2], ARGV, 7, family[2]) end
return {family[1], family[2]}
""",
    )

    #: KEYS: the family; for an entry, the stream. ARGV: its root member, the idle timeout (ms),
    #: the new API member, its packed client info, the root's kind ('web' for extendsession), the
    #: most members a family may have, the ``keep`` ms of check_member; for an entry, the family
    #: id and the entry (StreamEntry.arguments), added (its user the family's, its handle the
    #: ended member's) when a member ends to make room: a single Redis only (as END_OWN).
    #: Returns {user id, username, the member ended to make room or ''}; else
    #: {'ended', why, user id, username} when the family timed out (as TOUCH), or nil.
    #: Guarantees: the member is added only if the family is live and ARGV[1] is its live root of
    #: that kind, in the same step: a family that a logout has deleted can never gain a member.
    #: A family never holds more than ARGV[6] members: at the cap, its oldest member other than
    #: the root ends (by creation time) in the same step, unless the oldest are dead already
    #: (idle past the timeout: what a check of theirs would drop, unannounced): those are
    #: dropped first, and a live member ends only if the family is still at its cap.
    #: How the oldest is found without reading the whole family: field ``o`` lists the members
    #: this script added, oldest first (each followed by a space). At the cap, the list is read
    #: from its start: members gone alone (timed out) are skipped, dead ones dropped, and the
    #: first live one ends if there is still no room; the list drops all of them. It is rebuilt
    #: from the members left when it grows past twice the cap. A family whose list names no
    #: member to end (one extended before the list existed) is read whole, as it always was.
    #: Why one string, rewritten whole at each extension, and not a field per member: the
    #: string (over 64 bytes from the third member) makes Redis keep the family as a hash table.
    #: A family of short values only (an API client's user agent) stays a listpack, searched
    #: linearly, up to 512 fields: a queue of one field per member, tried, made such a family at
    #: the default cap slower for every command on it (an extension's script 51-60 -> 64-72 µs
    #: of Redis), though its cost no longer grew with the cap.
    EXTEND = LuaScript(
        CLOCK,
        FAMILY_FUNCTIONS,
        """
local now = now_ms()
local family, is_root, timed_out = check_member(KEYS[1], ARGV[1], tonumber(ARGV[2]), ARGV[5], now,
  tonumber(ARGV[7]))
if timed_out then return {'ended', is_root, timed_out[1], timed_out[2]} end
if not family or not is_root then return false end
local cap = tonumber(ARGV[6])
local order = redis.call('HGET', KEYS[1], 'o')
-- Five fixed fields (u n x r w), the list (o) when there is one, two per member (l: and i:).
local members = (redis.call('HLEN', KEYS[1]) - 5 - (order and 1 or 0)) / 2
order = order or ''
local ended = ''
if members >= cap then
  local idle = tonumber(ARGV[2])
  local from = 1
  while ended == '' and members >= cap do
    local space = string.find(order, ' ', from, true)
    if not space then break end
    local listed = string.sub(order, from, space - 1)
    from = space + 1
    local used = listed ~= ARGV[1] and redis.call('HGET', KEYS[1], 'l:' .. listed)
    if used and now - tonumber(used) > idle then
      redis.call('HDEL', KEYS[1], 'l:' .. listed, 'i:' .. listed)
      members = members - 1
    elseif used then
      ended = listed
    end
  end
  order = string.sub(order, from)
  if ended == '' and members >= cap then
    local fields = redis.call('HGETALL', KEYS[1])
    local oldest_created
    for i = 1, #fields, 2 do
      local member = string.sub(fields[i], 3)
      if string.sub(fields[i], 1, 2) == 'i:' and member ~= ARGV[1] then
        local created = tonumber(string.match(fields[i + 1], '^%d+'))
        if oldest_created == nil or created < oldest_created then
          ended, oldest_created = member, created
        end
      end
    end
  end
  if ended ~= '' then
    redis.call('HDEL', KEYS[1], 'l:' .. ended, 'i:' .. ended)
    if KEYS[2] then append_entry(KEYS[2], ARGV, 9, family[2], member_handle(ARGV[8], ended)) end
  end
end
order = order .. ARGV[3] .. ' '
if #order > 2 * cap * (#ARGV[3] + 1) then
  local kept = {}
  for listed in string.gmatch(order, '(%S+) ') do
    if redis.call('HEXISTS', KEYS[1], 'i:' .. listed) == 1 or listed == ARGV[3] then
      kept[#kept + 1] = listed .. ' '
    end
  end
  order = table.concat(kept)
end
redis.call('HSET', KEYS[1], 'l:' .. ARGV[3], ms(now), 'i:' .. ARGV[3], ms(now) .. '\\31' .. ARGV[4],
  'o', order)
return {family[1], family[2], ended}
""",
    )

    #: KEYS: the pending challenge, the family it becomes, and with a FamilyCap its KEYS.
    #: ARGV: username, user id, the API member, its packed client info, idle ms, absolute ms,
    #: keep ms (check_member), and with a FamilyCap its ARGV. Returns 1 ({1, families ended}
    #: with a FamilyCap), or nil when the challenge is gone.
    #: Guarantees: a challenge yields at most one family, ever: the pending challenge must exist
    #: for this very user (its name in lower case: keys.same_user) and is deleted in the same
    #: step that creates the family. With a FamilyCap, the family is indexed and its user left
    #: with at most the cap's live families in that same step (``opened_within_cap``).
    OPEN_FROM_CHALLENGE = LuaScript(
        CLOCK,
        FAMILY_FUNCTIONS,
        CAPPED_OPEN,
        """
if redis.call('GET', KEYS[1]) ~= string.lower(ARGV[1]) then return false end
redis.call('DEL', KEYS[1])
local now = now_ms()
create_family(KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4], '0', tonumber(ARGV[5]),
  tonumber(ARGV[6]), now, tonumber(ARGV[7]))
return opened_within_cap(KEYS, 3, ARGV, 8, now + tonumber(ARGV[6]), now)
""",
    )

    #: KEYS: the family, and with a FamilyCap its KEYS. ARGV as OPEN_FROM_CHALLENGE, the member
    #: being a web login's. Returns as OPEN_FROM_CHALLENGE, nil when the family exists.
    #: Guarantees: never overwrites a family; the FamilyCap's as OPEN_FROM_CHALLENGE's.
    OPEN_WEB = LuaScript(
        CLOCK,
        FAMILY_FUNCTIONS,
        CAPPED_OPEN,
        """
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local now = now_ms()
create_family(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], '1', tonumber(ARGV[5]),
  tonumber(ARGV[6]), now, tonumber(ARGV[7]))
return opened_within_cap(KEYS, 2, ARGV, 8, now + tonumber(ARGV[6]), now)
""",
    )

    #: KEYS: the family, its ended marker. ARGV: the user id, a prefix of a member hash (or ''
    #: for any member), how long the ended marker is kept (ms; 0: none, the family is deleted).
    #: Returns 1 when it ended the family, else 0.
    #: Guarantees: a user can end only their own families, all members at once.
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
if tonumber(ARGV[3]) > 0 then
  redis.call('RENAME', KEYS[1], KEYS[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
  return 1
end
return redis.call('DEL', KEYS[1])
"""
    )

    #: KEYS: the family, its ended marker. ARGV: how long the marker is kept (ms).
    #: Returns 1 when it ended the family, else 0 (it was not live).
    #: Guarantees: the family ends at once, every member with it, as a DEL would end it; what it
    #: held (its user and the hashes of its members' secrets, never a secret) stays under the
    #: marker for ARGV[1] ms, so that a retried revocation can tell that it ended.
    RETIRE = LuaScript(
        """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
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
        max_members: int = 100,
        replicas: Replicas | None = None,
        keep_timed_out: float = 0,
    ) -> None:
        self.client = client
        self.keys = keys
        #: Whether, and by how many replicas, changes are confirmed (REDIS_WAIT_REPLICAS).
        self.replicas = replicas if replicas is not None else Replicas(keys)
        self.idle_ms = int(idle_timeout * 1000)
        self.absolute_ms = int(absolute_timeout * 1000)
        self.max_members = max(2, int(max_members))
        #: How long a family's record outlives its timeouts (ms; see check_member's ``keep``).
        self.keep_ms = int(keep_timed_out * 1000)
        #: Whether a script may end sessions together with what goes with them in other keys (the
        #: family's index entry, the audit entry): on a single Redis, where a script may touch
        #: keys of any slot, and when changes need not be confirmed (REDIS_WAIT_REPLICAS keeps
        #: an ended marker and confirms: end_family). See END_OWN, EXTEND's entry, and the open
        #: scripts' FamilyCap.
        self.one_step_endings = not self.replicas.enabled and not is_cluster(client)
        self._family_key_parts = keys.family_key_parts()
        #: Told of every family a check found timed out and ended (auth/endings.py announces it).
        self.on_timeout: Callable[[TimedOut], None] | None = None

    # --- checking ------------------------------------------------------------------------------

    def validate(self, raw_session_id: object, kind: str = "api") -> Session | None:
        """The live session named by ``raw_session_id``, touched; ``None`` for anything else.

        Ids that do not have the exact shape the gateway hands out are refused without asking Redis.
        """
        found = self.lookup(raw_session_id, kind)
        return found if isinstance(found, Session) else None

    def lookup(self, raw_session_id: object, kind: str = "api") -> Session | str:
        """The live session named by ``raw_session_id``, touched; else why not: ``missing`` (no
        id), ``unknown`` (malformed, unknown or ended before), ``expired`` or ``idle`` (this very
        check found it past its absolute or idle timeout)."""
        if raw_session_id is None:
            return "missing"
        session_id = SessionId.parse(raw_session_id)
        if session_id is None:
            return "unknown"
        return self._touch(session_id, kind)

    def check(self, session_id: SessionId, kind: str = "api") -> Session | None:
        """The live ``kind`` ('api' or 'web') session ``session_id``, touched (one round trip);
        ``None`` if it is not live."""
        found = self._touch(session_id, kind)
        return found if isinstance(found, Session) else None

    def _touch(self, session_id: SessionId, kind: str) -> Session | str:
        answer = self.TOUCH(
            self.client,
            [self.keys.family(session_id.family_id)],
            [session_id.member, self.idle_ms, kind, self.keep_ms],
        )
        return self._found(session_id, kind, answer)

    def _found(self, session_id: SessionId, kind: str, answer: Any) -> Session | str:
        """The session a check (TOUCH's answer, or END_OWN's) found, else why not
        (:meth:`lookup`)."""
        if isinstance(answer, str):
            return answer
        if not answer:
            return "unknown"
        if answer[0] == TIMED_OUT:
            return self._timed_out(session_id, answer, kind)
        return Session(int(answer[0]), answer[1], session_id.family_id, session_id.member)

    def _timed_out(self, session_id: SessionId, answer: list[str], kind: str) -> str:
        """A script found the family of ``session_id`` (a ``kind`` member) past a timeout and
        ended it: tells ``on_timeout``; answers why ('expired' or 'idle')."""
        why, user_id, username = answer[1], int(answer[2]), answer[3]
        if self.on_timeout is not None:
            family = session_id.family_id
            self.on_timeout(TimedOut(family, session_id.handle, kind, user_id, username, why))
        return why

    # --- starting ------------------------------------------------------------------------------

    def open_from_challenge(
        self,
        token: str,
        session_id: SessionId,
        user_id: int,
        username: str,
        client_info: ClientInfo,
        riders: Sequence[Participant] = (),
        ended: Sequence[str] = (),
        cap: FamilyCap | None = None,
    ) -> bool:
        """Consumes challenge ``token`` and starts the API family of ``session_id``
        (SessionId.for_challenge); False if the token was used or expired.

        One round trip: the family is created and indexed under its user, with the ``riders``.
        The token itself stays in the user's record until it expires; its pending challenge is
        gone, so a replay is refused here. ``ended``: families that a rider (:meth:`ending`)
        ends in the same round trip, confirmed with it (REDIS_WAIT_REPLICAS). ``cap``: the
        script indexes the family and keeps its user within that cap (:meth:`family_cap`).
        """
        family = session_id.family_id
        return self._open(
            self.OPEN_FROM_CHALLENGE,
            [self.keys.pending_challenge(family), self.keys.family(family)],
            session_id,
            user_id,
            username,
            client_info.packed("api"),
            riders,
            ended,
            cap,
        )

    def open_web(
        self,
        session_id: SessionId,
        user_id: int,
        username: str,
        client_info: ClientInfo,
        riders: Sequence[Participant] = (),
        ended: Sequence[str] = (),
        cap: FamilyCap | None = None,
    ) -> Session:
        """Starts a web family whose root is the web login ``session_id`` (a new family id and
        secret), with the ``riders`` in the same round trip (``ended`` and ``cap`` as for
        :meth:`open_from_challenge`)."""
        opened = self._open(
            self.OPEN_WEB,
            [self.keys.family(session_id.family_id)],
            session_id,
            user_id,
            username,
            client_info.packed("web"),
            riders,
            ended,
            cap,
        )
        if not opened:
            raise RuntimeError("a fresh 128-bit family id collided with a live family")
        return Session(user_id, username, session_id.family_id, session_id.member)

    def extend(
        self,
        root: SessionId,
        added: SessionId,
        client_info: ClientInfo,
        riders: Sequence[Participant] = (),
        root_kind: str = "web",
        capped_entry: StreamEntry | None = None,
    ) -> Extension | None:
        """Adds the API session ``added`` (a new secret in the family of ``root``) to the family
        of the live ``root_kind`` root ``root`` (a web login); ``None`` if that is not live. At
        the family's cap (MAX_SESSIONS_PER_FAMILY) its oldest other member ends to make room.

        The web login's own secret is never handed out. The ``riders`` go in the same round trip
        (sent whether or not the login is live). ``capped_entry``: the audit entry of the member
        that ends to make room, if one does, written by the script (only while
        :attr:`one_step_endings`).
        """
        keys = [self.keys.family(root.family_id)]
        args: list[Any] = [
            root.member,
            self.idle_ms,
            added.member,
            client_info.packed("api"),
            root_kind,
            self.max_members,
            self.keep_ms,
        ]
        if capped_entry is not None:
            keys.append(capped_entry.stream)
            args += [root.family_id, *capped_entry.arguments()]
        (answer,) = send(
            self.client,
            lambda pipe: self.EXTEND.queue(pipe, keys, args),
            riders,
            Change(handle=handle_of(root.family_id, added.member)),
            [self.EXTEND],
            self.replicas.of_change("Login", [root.family_id]),
        )
        if not answer:
            return None
        if answer[0] == TIMED_OUT:
            self._timed_out(root, answer, root_kind)
            return None
        session = Session(int(answer[0]), answer[1], root.family_id, added.member)
        ended = handle_of(root.family_id, answer[2]) if answer[2] else None
        return Extension(session, ended)

    def _open(
        self,
        script: LuaScript,
        keys: list[str],
        session_id: SessionId,
        user_id: int,
        username: str,
        packed_info: str,
        riders: Sequence[Participant],
        ended: Sequence[str],
        cap: FamilyCap | None,
    ) -> bool:
        """Runs ``script`` (an OPEN_ script) with the ``riders``; says whether it opened the
        family. The family is indexed under its user by the script itself with a ``cap``
        (which then keeps the user within it), else by the pipeline, which takes the entry back
        when nothing was opened."""
        family = session_id.family_id
        index_key = self.keys.user_families(user_id)
        args = [
            username, user_id, session_id.member, packed_info, self.idle_ms, self.absolute_ms,
            self.keep_ms,
        ]  # fmt: skip
        if cap is not None:
            keys = [*keys, *cap.keys()]
            args += cap.arguments(family)

        def own(pipe: Any) -> None:
            script.queue(pipe, keys, args)
            if cap is None:
                now_ms = int(time.time() * 1000)
                pipe.zadd(index_key, {family: now_ms + self.absolute_ms}, nx=True)
                # The expired, claimed or not (family_endings: a claimed family is scored by
                # minus its expiry).
                pipe.zremrangebyscore(index_key, -now_ms, now_ms)

        opened = send(
            self.client,
            own,
            riders,
            Change(handle=handle_of(family, session_id.member), username=username),
            [script],
            self.replicas.of_change("Login", [family, *ended]),
        )[0]
        if cap is not None:
            cap.answered(opened)
        elif not opened and not self.client.exists(self.keys.family(family)):
            # Nothing was opened and no family of that id lives (a replayed token names one that
            # an earlier login opened): take back the index entry.
            self.client.zrem(index_key, family)
        return bool(opened)

    def family_cap(self, user_id: int, most: int, entry: StreamEntry | None) -> FamilyCap:
        """The cap of ``most`` live families for user ``user_id``, kept by the script that opens
        the user's new family (:meth:`open_from_challenge`'s ``cap``), with the audit ``entry``
        of the ending. Only while :attr:`one_step_endings`."""
        return FamilyCap(self.keys.user_families(user_id), most, self._family_key_parts, entry)

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
        family_expiry = int(record.get("x", 0))
        if family_expiry <= now_ms:
            return
        root_used = int(record.get(f"l:{record.get('r')}", 0))
        family_expiry = min(family_expiry, root_used + self.idle_ms)
        if family_expiry <= now_ms:
            return  # its root idled out: the record outlives it only to be noticed (keep)
        for member in members:
            last_used = int(record.get(f"l:{member}", 0))
            if now_ms - last_used > self.idle_ms:
                continue
            created, kind, address, agent = record[f"i:{member}"].split(FIELD_SEPARATOR, 3)
            yield SessionView(
                handle=handle_of(family, member),
                family_id=family,
                kind=kind,
                linked=len(members) > 1,
                created=int(created),
                last_used=last_used,
                expires=min(family_expiry, last_used + self.idle_ms),
                address=address,
                user_agent=agent,
            )

    # --- ending --------------------------------------------------------------------------------

    def end_family(self, session: Session, riders: Sequence[Participant] = ()) -> None:
        """Ends the family of ``session`` and every member in it, at once (one round trip, which
        carries the ``riders``)."""

        def own(pipe: Any) -> None:
            self._queue_end(pipe, session.family_id)
            pipe.zrem(self.keys.user_families(session.user_id), session.family_id)

        send(
            self.client,
            own,
            riders,
            Change(session.handle, session.username, session.user_id, (session.family_id,)),
            [self.RETIRE],
            self.replicas.of_change("Logout", [session.family_id]),
        )

    def end_own(
        self, session_id: SessionId, kind: str, entry: StreamEntry | None = None
    ) -> Session | str:
        """Checks the ``kind`` session ``session_id`` and ends its family, adding ``entry`` (its
        ``user`` the family's), all in one round trip; answers the session it was, else why not
        (as :meth:`lookup`, having ended nothing). Only while :attr:`one_step_endings`."""
        family = session_id.family_id
        keys = [self.keys.family(family)]
        args: list[Any] = [
            session_id.member, self.idle_ms, kind, self.keep_ms,
            self.keys.user_families_prefix(), family,
        ]  # fmt: skip
        if entry is not None:
            keys.append(entry.stream)
            args.extend(entry.arguments())
        return self._found(session_id, kind, self.END_OWN(self.client, keys, args))

    def _queue_end(self, pipe: Any, family: str) -> None:
        """Queues the end of ``family`` (its reply: 1 when it was live, else 0): a DEL, or with
        confirmation on, the rename to its ended marker."""
        if self.replicas.enabled:
            self.RETIRE.queue(
                pipe,
                [self.keys.family(family), self.keys.ended_family(family)],
                [self.replicas.grace_ms],
            )
        else:
            pipe.delete(self.keys.family(family))

    def owner_of(self, handle: str, ended: bool = False) -> int | None:
        """The user id of the family a handle names, while it lives (``ended``: while its ended
        marker does, see :meth:`ended_by_handle`)."""
        family = family_of(handle)
        if not is_family_id(family):
            return None
        key = self.keys.ended_family(family) if ended else self.keys.family(family)
        owner = self.client.hget(key, "u")
        return int(owner) if owner else None

    def end_by_handle(
        self, user_id: int, handle: str, riders: Sequence[Participant] = ()
    ) -> bool:
        """Ends the family of the member named by ``handle`` if it is the user's; says whether.

        The ``riders`` are sent only when it was ended, with the index update.
        """
        family, _, member_prefix = handle.partition(":")
        if not is_family_id(family) or len(member_prefix) != HANDLE_MEMBER_CHARS:
            return False
        grace = self.replicas.grace_ms if self.replicas.enabled else 0
        ended = self.END_OWNED(
            self.client,
            [self.keys.family(family), self.keys.ended_family(family)],
            [str(user_id), member_prefix, grace],
        )
        if ended:
            index_key = self.keys.user_families(user_id)
            send(
                self.client,
                lambda pipe: pipe.zrem(index_key, family),
                riders,
                Change(handle, user_id=user_id, ended_families=(family,)),
                confirm=self.replicas.of_change("Logout", [family]),
            )
        return bool(ended)

    def claim_excess(self, user_id: int, family_id: str, most: int) -> ExcessClaim:
        """The families of user ``user_id`` beyond ``most`` live ones, claimed for the login that
        opened ``family_id`` to end (:meth:`end_claimed`), as a participant of the round trip
        that opens it (see :class:`ExcessClaim`)."""
        return ExcessClaim(self.keys.user_families(user_id), family_id, most)

    def end_claimed(
        self, user_id: int, claim: ExcessClaim, riders: Sequence[Participant] = ()
    ) -> int:
        """Ends the families that ``claim`` took, with the ``riders``, in one round trip; answers
        how many were still alive (a login that is not confirmed raises NotConfirmed)."""
        families = list(claim.claimed)
        index_key = self.keys.user_families(user_id)
        return self._end_families(index_key, families, riders, Change(user_id=user_id), "Login")

    def release(self, claim: ExcessClaim) -> None:
        """Gives back what ``claim`` took, unended (its login opened nothing)."""
        if claim.claimed:
            send(self.client, claim.release)

    def ending(
        self, user_id: int, families: Sequence[str], riders: Sequence[Participant] = ()
    ) -> FamilyEnding:
        """The end of ``families`` of user ``user_id``, with the ``riders`` of its announcement,
        as a participant of another change's round trip (see :class:`FamilyEnding`). That
        change's confirmation must cover ``families`` (``ended`` of :meth:`open_from_challenge`)."""
        change = Change(user_id=user_id, ended_families=tuple(families))
        index_key = self.keys.user_families(user_id)
        return FamilyEnding(
            self._queue_end, (self.RETIRE,), index_key, list(families), riders, change
        )

    def end_all_for_user(
        self,
        user_id: int,
        keep_family: str | None = None,
        riders: Sequence[Participant] = (),
        change: Change = Change(),
    ) -> int:
        """Ends every family of a user but ``keep_family``; answers how many were still alive.

        Each family ends atomically; a family started while this runs may survive (it began after
        the request to end all). The ``riders`` are sent with the deletions (on their own when
        there is nothing to delete).
        """
        index_key = self.keys.user_families(user_id)
        families = [f for f in self.client.zrange(index_key, 0, -1) if f != keep_family]
        if not families and not riders:
            return 0
        return self._end_families(
            index_key, families, riders, replace(change, user_id=user_id), "Logout"
        )

    def _end_families(
        self,
        index_key: str,
        families: list[str],
        riders: Sequence[Participant],
        change: Change,
        what: str,
    ) -> int:
        """Ends ``families`` of one user (``index_key`` their index) in one round trip with the
        ``riders``; answers how many were still alive. ``what`` names the change when it is not
        confirmed (NotConfirmed)."""

        def own(pipe: Any) -> None:
            for family in families:
                self._queue_end(pipe, family)

        return counted(
            lambda: send(
                self.client,
                own,
                [*riders, Unindex(index_key, families)],
                replace(change, ended_families=tuple(families)),
                [self.RETIRE],
                self.replicas.of_change(what, families),
            )
        )

    # --- a revocation retried -------------------------------------------------------------------

    def recently_ended(self, raw_session_id: object, kind: str = "api") -> Session | None:
        """The ``kind`` session ``raw_session_id`` as it was when a revocation ended its family
        within REDIS_WAIT_RETRY_GRACE, once the replicas confirm that ending (again: the retry
        of a revocation whose confirmation came too late); ``None`` for anything else, and always
        without confirmation (no round trip). Raises NotConfirmed when the replicas still do
        not confirm it."""
        if not self.replicas.enabled:
            return None
        session_id = (
            raw_session_id
            if isinstance(raw_session_id, SessionId)
            else SessionId.parse(raw_session_id)
        )
        if session_id is None:
            return None
        member = session_id.member
        fields = ["u", "n", "r", "w", f"l:{member}"]

        def matches(replies: list[Any]) -> bool:
            user, _, root, web, used = replies[0]
            return bool(user and used) and ((root == member and web == "1") == (kind == "web"))

        replies = self._confirmed_ended(
            session_id.family_id, lambda pipe, key: pipe.hmget(key, fields), matches
        )
        if replies is None:
            return None
        user_id, username = replies[0][:2]
        return Session(int(user_id), username, session_id.family_id, member)

    def ended_by_handle(self, user_id: int, handle: str) -> bool:
        """Whether a revocation ended the family of the member ``handle`` names, the user's,
        within REDIS_WAIT_RETRY_GRACE, confirmed by the replicas (again); False without
        confirmation. Raises NotConfirmed when the replicas still do not confirm it."""
        family, _, member_prefix = handle.partition(":")
        if not self.replicas.enabled or not is_family_id(family):
            return False
        if len(member_prefix) != HANDLE_MEMBER_CHARS:
            return False

        def read(pipe: Any, key: str) -> None:
            pipe.hget(key, "u")
            pipe.hkeys(key)

        def matches(replies: list[Any]) -> bool:
            owner, names = replies
            return owner == str(user_id) and any(n.startswith(f"i:{member_prefix}") for n in names)

        return self._confirmed_ended(family, read, matches) is not None

    def _confirmed_ended(
        self,
        family: str,
        read: Callable[[Any, str], Any],
        matches: Callable[[list[Any]], bool],
    ) -> list[Any] | None:
        """Reads ``family``'s ended marker (``read(pipe, key)`` queues the reads) and has the
        replicas confirm, in one round trip (two on a cluster); answers the replies to the reads
        when they ``match``, else ``None``. NotConfirmed is raised only for a match: a marker
        that is not there is nothing to confirm."""
        reader = Reader(lambda pipe: read(pipe, self.keys.ended_family(family)))
        try:
            send(self.client, participants=[reader], confirm=self.replicas.of_change("Logout", [family]))
        except NotConfirmed:
            if matches(reader.replies):
                raise
            return None
        return reader.replies if matches(reader.replies) else None

"""The Lua functions that the family scripts of SessionStore share (and those that pick families
on a user's index), with the marker of their answers that says a family timed out and the entry
(StreamEntry) that ``append_entry`` adds.

Redis runs each script on its own: a script cannot call another script, nor a function that
another defines. So the functions are text that every family script includes (after
scripts.CLOCK, whose ``now_ms`` and ``ms`` they use), and each script carries its own copy.
"""

from __future__ import annotations

from dataclasses import dataclass

from webservice.store.tokens import HANDLE_MEMBER_CHARS

#: Lua functions shared by the scripts that act for a member; each script calls them with its own
#: arguments (``now`` from scripts.CLOCK's ``now_ms()``).
#:
#: ``check_member(key, member, idle, kind, now, keep, ending)``: the family record
#: {u, n, x, r, w, l:member} and whether ``member`` is its root, if the family ``key`` is before
#: its absolute expiry, its root and ``member`` were used within ``idle`` ms, and ``member`` is of
#: ``kind``: 'web' only for the web login that roots a web family, 'api' for every other member (so
#: a web login's secret never works as an API session, nor the reverse); else nil and why:
#: 'expired', 'idle', or nothing (unknown). A member found idle is removed; the family is deleted
#: when it has expired or its root is idle, and then a third value is the record it deleted. A live
#: member is marked used (unless ``ending``: the caller ends the family next,
#: SessionStore.END_OWN), and when it is the root the key's expiry moves to
#: min(absolute expiry, now + idle) + keep: at most once per min(1 s, idle / 100), so that most
#: checks of a busy session write nothing (a write costs Redis about twice the CPU of the read,
#: and every replica and the append-only file get it). A member used again sooner keeps its
#: earlier mark: an idle timeout may end a session up to that much early, never late. ``now``
#: may be nil: the clock is then read once the member is found, so that the check of an unknown
#: or ended session (one a client keeps sending after its logout, an attacker's guess) costs
#: Redis one read and no TIME: a third less of Redis's time for that script (5.0 -> 3.4 µs).
#:
#: ``create_family(key, username, user_id, member, info, web, idle, absolute, now, keep)``: writes
#: a new family with root ``member`` ('1' in ``web`` for a web login); the key expires ``keep`` ms
#: after the root idles out.
#:
#: ``append_entry(stream, args, from, user, handle)``: adds to ``stream`` the entry that ``args``
#: holds from index ``from`` to its end (StreamEntry.arguments: so an entry is always the last of
#: a script's ARGV), its ``user`` value set to ``user`` and, when given, its ``handle`` value to
#: ``handle``. ``member_handle(family_id, member)`` is
#: tokens.handle_of.
#:
#: ``keep`` is 0 unless logout notifications are on (SessionStore's ``keep_timed_out``): Redis then
#: drops the record the moment it times out. With notifications, the record outlives its timeouts
#: by ``keep`` ms (dead, as the checks above say), so that a request arriving meanwhile finds it
#: timed out and the family's end is announced and notified.
FAMILY_FUNCTIONS = r"""
local function check_member(key, member, idle, kind, now, keep, ending)
  local family = redis.call('HMGET', key, 'u', 'n', 'x', 'r', 'w', 'l:' .. member)
  if not family[6] then return nil end
  now = now or now_ms()
  local expiry = tonumber(family[3])
  local is_root = family[4] == member
  if now >= expiry then
    redis.call('DEL', key)
    return nil, 'expired', family
  end
  local root_used = family[6]
  if not is_root then root_used = redis.call('HGET', key, 'l:' .. family[4]) end
  if not root_used or now - tonumber(root_used) > idle then
    redis.call('DEL', key)
    return nil, 'idle', family
  end
  if now - tonumber(family[6]) > idle then
    redis.call('HDEL', key, 'l:' .. member, 'i:' .. member)
    return nil, 'idle'
  end
  if (is_root and family[5] == '1') ~= (kind == 'web') then return nil end
  if not ending and now - tonumber(family[6]) >= math.min(1000, math.floor(idle / 100)) then
    redis.call('HSET', key, 'l:' .. member, ms(now))
    if is_root then
      redis.call('PEXPIREAT', key, ms(math.min(expiry, now + idle) + keep))
    end
  end
  return family, is_root
end

local function append_entry(stream, args, from, user, handle)
  local entry = {unpack(args, from + 3)}
  entry[tonumber(args[from + 1])] = user
  if handle then entry[tonumber(args[from + 2])] = handle end
  redis.call('XADD', stream, 'MAXLEN', '~', args[from], '*', unpack(entry))
end

local function member_handle(family_id, member)
  return family_id .. ':' .. string.sub(member, 1, HANDLE_MEMBER_CHARS)
end

local function create_family(key, username, user_id, member, info, web, idle, absolute, now, keep)
  local expiry = now + absolute
  redis.call('HSET', key, 'u', user_id, 'n', username, 'x', ms(expiry), 'r', member, 'w', web,
    'l:' .. member, ms(now), 'i:' .. member, ms(now) .. '\31' .. info)
  redis.call('PEXPIREAT', key, ms(math.min(expiry, now + idle) + keep))
end
""".replace("HANDLE_MEMBER_CHARS", str(HANDLE_MEMBER_CHARS))

#: Lua functions for the scripts that pick families on a user's index (keys.user_families), after
#: scripts.CLOCK. The index scores each family by its absolute expiry, and a family that a login
#: has claimed for ending by minus it (family_endings.ExcessClaim).
#:
#: ``beyond_cap(index, own, most, now)``: drops the index's expired entries, claimed or not
#: (scores from minus ``now`` to ``now``), and answers the oldest live unclaimed families (scores
#: above 0, the first started first) other than ``own`` while more than ``most`` of them are
#: left: {id, score, id, score, ...}.
INDEX_FUNCTIONS = r"""
local function beyond_cap(index, own, most, now)
  redis.call('ZREMRANGEBYSCORE', index, ms(-now), ms(now))
  local over = redis.call('ZCOUNT', index, '(0', '+inf') - most
  local beyond = {}
  if over <= 0 then return beyond end
  local oldest = redis.call('ZRANGEBYSCORE', index, '(0', '+inf', 'WITHSCORES', 'LIMIT', 0,
    over + 1)
  for i = 1, #oldest, 2 do
    if #beyond == 2 * over then break end
    if oldest[i] ~= own then
      beyond[#beyond + 1] = oldest[i]
      beyond[#beyond + 1] = oldest[i + 1]
    end
  end
  return beyond
end
"""

#: Lua functions for the scripts that open a family (SessionStore.OPEN_FROM_CHALLENGE, OPEN_WEB),
#: after FAMILY_FUNCTIONS.
#:
#: ``opened_within_cap(keys, k, args, a, expiry, now)``: what an open script answers once it has
#: created its family (absolute ``expiry``): 1 when ``keys[k]`` is absent (the caller indexes the
#: family in the same pipeline); else the family's user stays within MAX_FAMILIES_PER_USER
#: (``index_within_cap``, FamilyCap.arguments: ``keys[k]`` the user's index, ``keys[k + 1]`` the
#: audit stream, ``args[a]`` the family id, then the cap, the head and the tail of a family key,
#: and the entry), and it answers {1, how many families ended}. The entry (its user the username
#: ``args[1]``) is added once, when any ended.
#:
#: ``index_within_cap(index, family_id, expiry, now, most, head, tail)``: indexes the family
#: ``family_id`` just created under its user (``index``, scored by its absolute ``expiry``) and
#: ends the families ``beyond_cap`` answers (INDEX_FUNCTIONS), each key built as
#: ``head .. id .. tail`` (keys.family_key_parts: a single Redis only). Answers how many of those
#: were still live. Atomic, so that logins of one user at the same moment each end a different
#: family, and together leave exactly ``most``.
#:
CAPPED_OPEN = INDEX_FUNCTIONS + r"""
local function index_within_cap(index, family_id, expiry, now, most, head, tail)
  redis.call('ZADD', index, ms(expiry), family_id)
  local beyond = beyond_cap(index, family_id, most, now)
  local ended = 0
  for i = 1, #beyond, 2 do
    redis.call('ZREM', index, beyond[i])
    ended = ended + redis.call('DEL', head .. beyond[i] .. tail)
  end
  return ended
end

local function opened_within_cap(keys, k, args, a, expiry, now)
  if not keys[k] then return 1 end
  local ended = index_within_cap(keys[k], args[a], expiry, now, tonumber(args[a + 1]),
    args[a + 2], args[a + 3])
  if ended > 0 and keys[k + 1] then append_entry(keys[k + 1], args, a + 4, args[1]) end
  return {1, ended}
end
"""

#: The first element of a script's answer that says the family timed out (see SessionStore.TOUCH).
TIMED_OUT = "ended"


@dataclass(frozen=True)
class StreamEntry:
    """An entry that a script adds to a capped stream with the change it makes (store/audit.py's
    entries), its fields ``user`` and ``handle`` set to what the script finds: the username of
    the family, and the handle of the member that the entry is about, when the script decides
    which (``append_entry`` of FAMILY_FUNCTIONS)."""

    stream: str
    max_length: int
    fields: dict[str, str]

    def arguments(self) -> list[str | int]:
        """Its ARGV, as ``append_entry`` takes them: the stream's length (MAXLEN ~), where the
        values of ``user`` and ``handle`` are among the fields and values that follow (from 1)."""
        names = list(self.fields)
        values = [value for pair in self.fields.items() for value in pair]
        user, handle = 2 * names.index("user") + 2, 2 * names.index("handle") + 2
        return [self.max_length, user, handle, *values]

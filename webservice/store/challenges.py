"""Challenge tokens: what ``getchallenge`` hands out and ``login`` proves knowledge of.

Each token is recorded twice: as a field ``t:<token>`` (its expiry) in the user's hash, where
``login`` finds the user's outstanding tokens, and as a pending challenge ``P:{F}:c`` in the slot
of the family it will become (tokens.family_id_for_challenge). The pending challenge is what makes
a token single-use: the login script deletes it in the same step that creates the family.

Unlike coreBOS, every call hands out a new token and several stay valid at once (up to
``CHALLENGE_MAX_OUTSTANDING``), so the workers of one integration can log in as the same user at
the same moment.

**Spent tokens.** A login that uses a token (:meth:`ChallengeStore.spent`, riding in the round
trip that starts the family) takes it out of the record and keeps a hash of its proof, scored by
the token's expiry, in the name's spent proofs (``{P:user:<name>}:spent``), so that a replay of
the proof is still told the token was used (and is not counted as a wrong access key); and it
takes the token's entry out of its address's challenges. So an integration that logs in again
and again never fills either cap with tokens it used, they have no pending challenge left to
withdraw, and ``getchallenge`` stays one round trip. The record holds only the tokens no login
used yet: the getchallenge script and a login's read go through those only, and a login asks
for its own proof's hash among the spent ones (``ZSCORE``), whatever their number. They keep the
``max_per_user`` newest and expire with the newest.

**Decoys** (``HIDE_UNKNOWN_USERS``). For a name that is no user, getchallenge answers as for a
user: a fresh random token of the same shape, with serverTime and expireTime, recorded the same
way but in the name's *decoy* record ``{P:user:<name>}:decoy`` (keys.py), which ``login`` reads
next to the user record. So for any name, with or without a getchallenge first, login answers
what it answers for a user with a wrong access key: INVALID_AUTH_TOKEN when no token is live,
else INVALID_USER_CREDENTIALS, after the same reads and the same hashing. A token derived from the
name and the time (an HMAC) would store nothing, but then login could not tell whether a
getchallenge came first, and answering INVALID_AUTH_TOKEN only for real users would name them.
The decoy record holds at most ``CHALLENGE_MAX_OUTSTANDING`` tokens and expires with its newest
token, so what decoys take is bounded by the getchallenge rate (limits.py) times CHALLENGE_TTL,
like the pending challenges of real users. A name that cannot be a username gets a token that is
stored nowhere (nothing is hidden by it: no user can have that name).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from webservice.store.client import RedisClient, is_cluster
from webservice.store.keys import RedisKeys, same_user
from webservice.store.limits import TOKEN_BUCKET, RateBucket, RateLimited, take_token
from webservice.store.round_trip import Change, Participant, send
from webservice.store.scripts import CLOCK, LuaScript
from webservice.store.tokens import (
    family_id_for_challenge,
    hash_secret,
    new_access_key,
    new_challenge_token,
)
from webservice.store.users import CHALLENGE_FIELD_PREFIX, is_valid_username


@dataclass(frozen=True)
class Challenge:
    token: str
    server_time: int
    expire_time: int


#: ``issue(record, decoy, now, a)``: the body of :attr:`ChallengeStore.ISSUE`, as a function for
#: scripts: ``record`` and ``decoy`` are its KEYS, ``a`` its ARGV, ``now`` the server's clock
#: (ms). Needs :data:`CLOCK`'s ``ms``.
_ISSUE_FUNCTION = """
local function issue(user_record, decoy, now, a)
  local record = user_record
  local who = a[5]
  -- A hash is never empty in Redis: an empty read is a user record that does not exist.
  local fields = who ~= 'unknown' and redis.call('HGETALL', record) or {}
  if who == 'unknown' or (who == 'check' and #fields == 0) then
    if a[6] ~= '1' then return false end
    record = decoy
    fields = redis.call('HGETALL', record)
  end
  local prefix = a[4]
  local address = a[7]
  local live = {}
  local held = {}
  for i = 1, #fields, 2 do
    if string.sub(fields[i], 1, #prefix) == prefix then
      local expiry = tonumber(string.match(fields[i + 1], '^%d+'))
      local owner = string.match(fields[i + 1], '|(.*)$') or ''
      if expiry <= now then
        redis.call('HDEL', record, fields[i])
      else
        live[#live + 1] = {expiry, fields[i], owner}
        held[owner] = (held[owner] or 0) + 1
      end
    end
  end
  table.sort(live, function(x, y) return x[1] < y[1] end)
  local answer = {}
  local count = #live
  local function drop(index)
    local token = live[index]
    redis.call('HDEL', record, token[2])
    answer[#answer + 1] = string.sub(token[2], #prefix + 1)
    held[token[3]] = held[token[3]] - 1
    count = count - 1
    token[2] = nil
  end
  -- This address's own tokens beyond its cap, oldest first.
  local over = (held[address] or 0) - (tonumber(a[3]) - 1)
  for i = 1, #live do
    if over <= 0 then break end
    if live[i][3] == address then
      drop(i)
      over = over - 1
    end
  end
  -- Beyond the total, the oldest token of the address that holds the most.
  while count > tonumber(a[8]) - 1 do
    local most, most_held = nil, 0
    for owner, n in pairs(held) do
      if n > most_held then most, most_held = owner, n end
    end
    local victim
    for i = 1, #live do
      if live[i][2] and live[i][3] == most then
        victim = i
        break
      end
    end
    drop(victim)
  end
  local expiry = now + tonumber(a[2])
  redis.call('HSET', record, prefix .. a[1], ms(expiry) .. '|' .. address)
  if who ~= 'check' or record == decoy then redis.call('PEXPIREAT', record, ms(expiry)) end
  table.insert(answer, 1, ms(expiry))
  table.insert(answer, 1, ms(now))
  return answer
end
"""

#: ``track(key, entry, expiry, most, now)``: the body of :attr:`ChallengeStore.TRACK`, as a
#: function for scripts (its KEYS[1], ARGV[1], ARGV[2], ARGV[3], and the server's clock in ms).
#: Needs :data:`CLOCK`'s ``ms``.
_TRACK_FUNCTION = """
local function track(key, entry, expiry, most, now)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', ms(now))
  redis.call('ZADD', key, expiry, entry)
  local over = redis.call('ZCARD', key) - tonumber(most)
  local dropped = {}
  if over > 0 then
    local popped = redis.call('ZPOPMIN', key, over)
    for i = 1, #popped, 2 do dropped[#dropped + 1] = popped[i] end
  end
  redis.call('PEXPIREAT', key, redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')[2])
  return dropped
end
"""


class ChallengeStore:
    """Issues challenge tokens.

    A getchallenge is one round trip: on a single Redis the :attr:`IN_ONE_STEP` script (the
    rate limit's token taken, the token recorded, its pending challenge written and its address's
    challenges told, in one step), on a Redis Cluster (where these keys live in different slots)
    the rate limit's script in a round trip of its own first, then :attr:`ISSUE`, the pending
    challenge and :attr:`TRACK` in one pipeline."""

    #: KEYS: the record of a known user's tokens, the name's decoy record (same slot: keys.py).
    #: ARGV: the token, its lifetime (ms), the most tokens kept per client address, the field
    #: prefix, and who the name is: 'check' (a user if KEYS[1] exists: the Redis directory's user
    #: hash), 'known' (the caller found the user), 'unknown'; then '1' to give a name that is no
    #: user a decoy; the client's address; the most tokens kept in all.
    #: Returns {now ms, expiry ms, the tokens dropped for a cap...} by the server's clock, or nil
    #: for a name that is no user without decoys (nothing written).
    #: Guarantees: drops expired tokens; then, of this address's tokens, the oldest beyond
    #: ARGV[3]; then, while more than ARGV[8] remain, the oldest token of the address that holds
    #: the most. So clients at other addresses can never push out an address's tokens unless they
    #: hold more than it does: a user's own token survives a flood from up to ARGV[8] / ARGV[3] - 1
    #: addresses. Touches no other field and never creates a directory user; a record of tokens
    #: only (a decoy record, a host user's) expires with its newest token. Each token's value is
    #: "<expiry ms>|<address>" (one written before spent tokens had a set of their own may read
    #: "<expiry ms>:spent|<address>": it counts as any other, and its pending challenge is gone).
    ISSUE = LuaScript(CLOCK, _ISSUE_FUNCTION, "return issue(KEYS[1], KEYS[2], now_ms(), ARGV)")

    #: KEYS: the challenges issued to one client address (a sorted set of ``<token>\x1f<name>``
    #: by expiry). ARGV: the new entry, its expiry (ms), the most kept.
    #: Returns the entries dropped for the cap (oldest first), whose tokens the caller withdraws.
    #: Guarantees: the set keeps at most ARGV[3] unexpired entries and expires with its newest.
    TRACK = LuaScript(
        CLOCK, _TRACK_FUNCTION, "return track(KEYS[1], ARGV[1], ARGV[2], ARGV[3], now_ms())"
    )

    #: A whole getchallenge, on a single Redis only: its keys live in several slots.
    #: KEYS: :attr:`ISSUE`'s two, the token's pending challenge, the client address's
    #: challenges (:attr:`TRACK`'s), and, when getchallenge is rate limited, the address's token
    #: bucket (limits.TOKEN_BUCKET).
    #: ARGV: :attr:`ISSUE`'s eight, the pending challenge's value (the name), the address's
    #: entry for the token and the most entries it keeps (:attr:`TRACK`'s), then with a bucket
    #: its rate and burst.
    #: Returns {ms to wait} when the bucket is empty; {0} for a name that is no user without
    #: decoys; else {0, :attr:`ISSUE`'s answer, :attr:`TRACK`'s}.
    #: Guarantees: :attr:`ISSUE`'s and :attr:`TRACK`'s, in one step with the rate limit's; a
    #: refusal by the rate limit, like a name that is no user without decoys, writes nothing
    #: else; the pending challenge lives as long as the token.
    IN_ONE_STEP = LuaScript(
        CLOCK,
        TOKEN_BUCKET,
        _ISSUE_FUNCTION,
        _TRACK_FUNCTION,
        """
local now = now_ms()
if #KEYS > 4 then
  local wait = take_token(KEYS[5], tonumber(ARGV[12]), tonumber(ARGV[13]), now)
  if wait > 0 then return {wait} end
end
local answer = issue(KEYS[1], KEYS[2], now, ARGV)
if not answer then return {0} end
redis.call('SET', KEYS[3], ARGV[9], 'PX', ARGV[2])
return {0, answer, track(KEYS[4], ARGV[10], answer[2], ARGV[11], now)}
""",
    )

    def __init__(
        self,
        client: RedisClient,
        keys: RedisKeys,
        *,
        ttl: int,
        max_outstanding: int,
        max_per_address: int = 64,
        max_per_user: int = 544,
    ) -> None:
        self.client = client
        self.keys = keys
        self.ttl_ms = int(ttl * 1000)
        self.max_outstanding = max(1, int(max_outstanding))
        self.max_per_address = max(1, int(max_per_address))
        self.max_per_user = max(self.max_outstanding, int(max_per_user))
        #: Whether a getchallenge runs as one script (:attr:`IN_ONE_STEP`): on a single Redis,
        #: where a script may touch keys of any slot.
        self.in_one_step = not is_cluster(client)

    def issue(
        self,
        username: str,
        tokens_key: str,
        who: str,
        *,
        decoys: bool = False,
        address: str | None = None,
        bucket: RateBucket | None = None,
    ) -> Challenge | None:
        """A new token for ``username``, kept in ``tokens_key`` (``who`` as the script's), in one
        round trip; ``None`` when there is no such user (nothing left written), unless ``decoys``:
        then a name that is no user gets a decoy token (see the module docstring), answered
        exactly like a real one. With a rate limit's ``bucket``, a token is taken from it first
        (on a Redis Cluster in a round trip of its own); raises limits.RateLimited when it has
        none.

        What one client can leave behind is bounded: the name's record keeps at most
        CHALLENGE_MAX_OUTSTANDING tokens, and the client ``address`` at most
        CHALLENGE_MAX_PER_ADDRESS challenges over all names. The tokens either cap drops are
        withdrawn with their pending challenges in one more round trip (only then)."""
        token = new_challenge_token()
        valid = is_valid_username(username)
        if valid and address is not None and self.in_one_step:
            return self._issue_in_one_step(
                username, tokens_key, who, decoys, address, bucket, token
            )
        if bucket is not None:
            take_token(self.client, bucket)
        if not valid:
            if not decoys:
                return None
            now = int(time.time())
            return Challenge(token, now, now + self.ttl_ms // 1000)
        return self._issue_in_pipeline(username, tokens_key, who, decoys, address, token)

    def _issue_in_one_step(
        self,
        username: str,
        tokens_key: str,
        who: str,
        decoys: bool,
        address: str,
        bucket: RateBucket | None,
        token: str,
    ) -> Challenge | None:
        """:meth:`issue` as the single script :attr:`IN_ONE_STEP` (a single Redis)."""
        keys = [
            tokens_key,
            self.keys.decoy_challenges(username),
            # For a decoy the pending challenge is never consumed (no user record lists the
            # token): it expires with it.
            self.keys.pending_challenge(family_id_for_challenge(token)),
            self.keys.challenges_of_address(address),
        ]
        args: list[Any] = [
            *self._issue_args(token, who, decoys, address),
            same_user(username),
            _entry(token, username),
            self.max_per_address,
        ]
        if bucket is not None:
            keys.append(bucket.key)
            args += [bucket.rate, bucket.burst]
        reply = self.IN_ONE_STEP(self.client, keys, args)
        if reply[0]:
            raise RateLimited(int(reply[0]))
        if len(reply) == 1:
            return None
        answer, tracked = reply[1], reply[2]
        self._withdraw_dropped(username, answer, tracked)
        return self._issued(token, answer)

    def _issue_in_pipeline(
        self,
        username: str,
        tokens_key: str,
        who: str,
        decoys: bool,
        address: str | None,
        token: str,
    ) -> Challenge | None:
        """:meth:`issue` as :attr:`ISSUE`, the pending challenge and :attr:`TRACK` in one
        pipeline (a Redis Cluster, or no client address)."""
        pending = self.keys.pending_challenge(family_id_for_challenge(token))
        keys = [tokens_key, self.keys.decoy_challenges(username)]
        args = self._issue_args(token, who, decoys, address)
        entry = _entry(token, username)
        expiry_estimate = int(time.time() * 1000) + self.ttl_ms

        def own(pipe: Any) -> None:
            self.ISSUE.queue(pipe, keys, args)
            # The pending challenge goes in the same round trip; for a decoy it is never
            # consumed (no user record lists the token) and expires with it.
            pipe.set(pending, same_user(username), px=self.ttl_ms)
            if address is not None:
                self.TRACK.queue(
                    pipe,
                    [self.keys.challenges_of_address(address)],
                    [entry, expiry_estimate, self.max_per_address],
                )

        replies = send(self.client, own, scripts=[self.ISSUE, self.TRACK])
        answer = replies[0]
        tracked = replies[2] if address is not None else []
        if answer:
            self._withdraw_dropped(username, answer, tracked)
        else:
            # No such user and no decoy: nothing of this call may stay.
            untracked = None
            if address is not None:
                untracked = (self.keys.challenges_of_address(address), entry)
            self._withdraw([(token, username), *map(_entry_parts, tracked)], untracked)
        return self._issued(token, answer)

    def _withdraw_dropped(self, username: str, answer: list[Any], tracked: list[str]) -> None:
        """Withdraws what the caps dropped for a token just issued to ``username``: the tokens
        :attr:`ISSUE` dropped from the name's record (``answer``'s tail) and the entries
        :attr:`TRACK` dropped from the address's challenges (``tracked``); no round trip when
        neither dropped any."""
        dropped = [(old, username) for old in answer[2:]]
        dropped += [_entry_parts(item) for item in tracked]
        if dropped:
            self._withdraw(dropped)

    def _issue_args(
        self, token: str, who: str, decoys: bool, address: str | None
    ) -> list[str | int]:
        """:attr:`ISSUE`'s ARGV."""
        return [
            token,
            self.ttl_ms,
            self.max_outstanding,
            CHALLENGE_FIELD_PREFIX,
            who,
            int(decoys),
            address or "",
            self.max_per_user,
        ]

    @staticmethod
    def _issued(token: str, answer: list[Any] | None) -> Challenge | None:
        """The challenge :attr:`ISSUE` answered for ``token`` (``None``: no such user)."""
        if not answer:
            return None
        now_ms, expiry_ms = (int(value) for value in answer[:2])
        return Challenge(token, now_ms // 1000, expiry_ms // 1000)

    def _withdraw(
        self, dropped: list[tuple[str, str]], untracked: tuple[str, str] | None = None
    ) -> None:
        """Withdraws challenges a cap dropped: their pending challenges, and their tokens from
        whichever record of their name holds them; ``untracked`` (key, entry) leaves its
        address's set (one round trip)."""
        pipe = self.client.pipeline(transaction=False)
        if untracked is not None:
            pipe.zrem(*untracked)
        for token, username in dropped:
            pipe.delete(self.keys.pending_challenge(family_id_for_challenge(token)))
            field = CHALLENGE_FIELD_PREFIX + token
            if is_valid_username(username):
                for record in (
                    self.keys.user(username),
                    self.keys.challenge_tokens(username),
                    self.keys.decoy_challenges(username),
                ):
                    pipe.hdel(record, field)
        pipe.execute()

    def spent(
        self, token: str, tokens_key: str, issued_as: str, username: str, proof_hash: str
    ) -> Participant:
        """What a login that used ``token`` of ``username`` with the proof whose hash is
        ``proof_hash`` (:func:`proof_digest`; the token's field's value was ``issued_as``, in
        the record ``tokens_key``) sends in the round trip that starts its family: the token
        out of the record and ``proof_hash`` into the name's spent proofs, its entry out of its
        address's challenges (see the module docstring). Repeatable, and harmless when the
        family does not start (the token was used by another login a moment earlier: it is spent
        either way)."""
        address = issued_as.partition("|")[2]
        return _SpentToken(
            [tokens_key, self.keys.spent_challenges(username)],
            [CHALLENGE_FIELD_PREFIX + token, proof_hash, self.max_per_user],
            self.keys.challenges_of_address(address),
            _entry(token, username),
        )


class _SpentToken:
    """A used challenge token taken out of its record, its proof kept as spent, and untracked
    (a round_trip.Participant)."""

    #: KEYS: a record of challenge tokens, the spent proofs of its name (same slot: keys.py).
    #: ARGV: a token's field in the record, the hash of the proof a login made from it, the most
    #: spent proofs kept.
    #: Guarantees: a token still in the record leaves it as its proof's hash joins the spent
    #: proofs, scored by the token's expiry, in one step (a login that reads both, record first,
    #: finds the one or the other); no field (the record or the token gone) changes nothing, so
    #: the record is never created. The spent proofs keep no expired one and at most the ARGV[3]
    #: newest, and expire with the newest.
    SPEND = LuaScript(
        CLOCK,
        """
local value = redis.call('HGET', KEYS[1], ARGV[1])
if not value then return 0 end
local expiry = string.match(value, '^%d+')
if not expiry then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], expiry, ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ms(now_ms()))
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[3]) + 1))
local newest = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')[2]
if newest then redis.call('PEXPIREAT', KEYS[2], newest) end
return 1
""",
    )
    scripts = (SPEND,)

    def __init__(
        self, keys: list[str], args: list[str | int], address_key: str, entry: str
    ) -> None:
        self.keys = keys
        self.args = args
        self.address_key = address_key
        self.entry = entry

    def queue(self, pipe: Any, change: Change) -> None:
        self.SPEND.queue(pipe, self.keys, self.args)
        pipe.zrem(self.address_key, self.entry)

    def sent(self, replies: list[Any]) -> None:
        pass


#: Separates the token from the name in an address's challenge entries (neither contains it).
_ENTRY_SEPARATOR = "\x1f"


def _entry(token: str, username: str) -> str:
    """A challenge's entry in its address's set: the token and the name it was asked for."""
    return f"{token}{_ENTRY_SEPARATOR}{same_user(username)}"


def _entry_parts(entry: str) -> tuple[str, str]:
    token, _, username = entry.partition(_ENTRY_SEPARATOR)
    return token, username


def login_proof(token: str, access_key: str) -> str:
    """What a client sends as ``accessKey``: the lowercase hex MD5 of token + access key."""
    return hashlib.md5((token + access_key).encode("utf-8")).hexdigest()


def proof_digest(proof: str) -> str:
    """What the name's spent proofs keep of a login's ``proof``: a hash, as for every secret at
    rest (the token is spent, but the proof is still MD5(token + access key))."""
    return hash_secret(_normalised(proof))


def _normalised(proof: str) -> str:
    return proof.strip().lower()


def find_proven_token(tokens: Mapping[str, int], access_key: str, proof: str) -> str | None:
    """The token that ``proof`` was made from, comparing in constant time; ``None`` if none.
    Every token is hashed, whichever matches."""
    given = _normalised(proof).encode("utf-8")
    found = None
    for token in tokens:
        if hmac.compare_digest(login_proof(token, access_key).encode("ascii"), given):
            found = token
    return found


def has_unexpired(tokens: Mapping[str, int]) -> bool:
    now_ms = time.time() * 1000
    return any(expiry > now_ms for expiry in tokens.values())


#: What a login proof is checked against when there is no access key to check it against (a name
#: that is no user, a user without a key, under HIDE_UNKNOWN_USERS): random, known to nobody, so
#: the check fails after the same hashing as for a wrong key.
DECOY_ACCESS_KEY = new_access_key()

"""Challenge tokens: what ``getchallenge`` hands out and ``login`` proves knowledge of.

Each token is recorded twice: as a field ``t:<token>`` (its expiry) in the user's hash, where
``login`` finds the user's outstanding tokens, and as a pending challenge ``P:{F}:c`` in the slot
of the family it will become (tokens.family_id_for_challenge). The pending challenge is what makes
a token single-use: the login script deletes it in the same step that creates the family.

Unlike coreBOS, every call hands out a new token and several stay valid at once (up to
``CHALLENGE_MAX_OUTSTANDING``), so the workers of one integration can log in as the same user at
the same moment.

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

from webservice.store.client import RedisClient
from webservice.store.keys import RedisKeys
from webservice.store.round_trip import send
from webservice.store.scripts import CLOCK, LuaScript
from webservice.store.tokens import (
    family_id_for_challenge,
    new_access_key,
    new_challenge_token,
)
from webservice.store.users import CHALLENGE_FIELD_PREFIX, is_valid_username


@dataclass(frozen=True)
class Challenge:
    token: str
    server_time: int
    expire_time: int


class ChallengeStore:
    """Issues challenge tokens."""

    #: KEYS: the record of a known user's tokens, the name's decoy record (same slot: keys.py).
    #: ARGV: the token, its lifetime (ms), the most tokens kept, the field prefix, and who the
    #: name is: 'check' (a user if KEYS[1] exists: the Redis directory's user hash), 'known'
    #: (the caller found the user), 'unknown'; then '1' to give a name that is no user a decoy.
    #: Returns {now ms, expiry ms} by the server's clock, or nil for a name that is no user
    #: without decoys (nothing written).
    #: Guarantees: drops expired tokens and then the oldest ones so that at most ARGV[3] remain;
    #: touches no other field and never creates a directory user; a record of tokens only (a
    #: decoy record, a host user's) expires with its newest token.
    ISSUE = LuaScript(
        CLOCK,
        """
local record = KEYS[1]
local who = ARGV[5]
if who == 'unknown' or (who == 'check' and redis.call('EXISTS', KEYS[1]) == 0) then
  if ARGV[6] ~= '1' then return false end
  record = KEYS[2]
end
local now = now_ms()
local prefix = ARGV[4]
local fields = redis.call('HGETALL', record)
local live = {}
for i = 1, #fields, 2 do
  if string.sub(fields[i], 1, #prefix) == prefix then
    local expiry = tonumber(fields[i + 1])
    if expiry <= now then
      redis.call('HDEL', record, fields[i])
    else
      live[#live + 1] = {expiry, fields[i]}
    end
  end
end
local keep = tonumber(ARGV[3]) - 1
if #live > keep then
  table.sort(live, function(a, b) return a[1] < b[1] end)
  for i = 1, #live - keep do redis.call('HDEL', record, live[i][2]) end
end
local expiry = now + tonumber(ARGV[2])
redis.call('HSET', record, prefix .. ARGV[1], ms(expiry))
if who ~= 'check' or record == KEYS[2] then redis.call('PEXPIREAT', record, ms(expiry)) end
return {ms(now), ms(expiry)}
""",
    )

    def __init__(
        self, client: RedisClient, keys: RedisKeys, *, ttl: int, max_outstanding: int
    ) -> None:
        self.client = client
        self.keys = keys
        self.ttl_ms = int(ttl * 1000)
        self.max_outstanding = max(1, int(max_outstanding))

    def issue(
        self, username: str, tokens_key: str, who: str, *, decoys: bool = False
    ) -> Challenge | None:
        """A new token for ``username``, kept in ``tokens_key`` (``who`` as the script's), in one
        round trip; ``None`` when there is no such user (nothing left written), unless ``decoys``:
        then a name that is no user gets a decoy token (see the module docstring), answered
        exactly like a real one."""
        token = new_challenge_token()
        if not is_valid_username(username):
            if not decoys:
                return None
            now = int(time.time())
            return Challenge(token, now, now + self.ttl_ms // 1000)
        pending = self.keys.pending_challenge(family_id_for_challenge(token))
        keys = [tokens_key, self.keys.decoy_challenges(username)]
        args = [
            token, self.ttl_ms, self.max_outstanding, CHALLENGE_FIELD_PREFIX, who, int(decoys)
        ]

        def own(pipe: Any) -> None:
            self.ISSUE.queue(pipe, keys, args)
            # The pending challenge goes in the same round trip; for a decoy it is never
            # consumed (no user record lists the token) and expires with it.
            pipe.set(pending, username, px=self.ttl_ms)

        answer = send(self.client, own, scripts=[self.ISSUE])[0]
        if not answer:
            self.client.delete(pending)
            return None
        now_ms, expiry_ms = (int(value) for value in answer)
        return Challenge(token, now_ms // 1000, expiry_ms // 1000)


def login_proof(token: str, access_key: str) -> str:
    """What a client sends as ``accessKey``: the lowercase hex MD5 of token + access key."""
    return hashlib.md5((token + access_key).encode("utf-8")).hexdigest()


def find_proven_token(tokens: Mapping[str, int], access_key: str, proof: str) -> str | None:
    """The token that ``proof`` was made from, comparing in constant time; ``None`` if none."""
    given = proof.strip().lower().encode("utf-8")
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

"""Challenge tokens: what ``getchallenge`` hands out and ``login`` proves knowledge of.

Each token is recorded twice: as a field ``t:<token>`` (its expiry) in the user's hash, where
``login`` finds the user's outstanding tokens, and as a pending challenge ``P:{F}:c`` in the slot
of the family it will become (tokens.family_id_for_challenge). The pending challenge is what makes
a token single-use: the login script deletes it in the same step that creates the family.

Unlike coreBOS, every call hands out a new token and several stay valid at once (up to
``CHALLENGE_MAX_OUTSTANDING``), so the workers of one integration can log in as the same user at
the same moment.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass

from webservice.keys import RedisKeys
from webservice.redis_client import LUA_NOW_MS, LuaScript, RedisClient
from webservice.tokens import family_id_for_challenge, new_challenge_token
from webservice.users import CHALLENGE_FIELD_PREFIX, is_valid_username


@dataclass(frozen=True)
class Challenge:
    token: str
    server_time: int
    expire_time: int


class ChallengeStore:
    """Issues challenge tokens and checks login proofs against them."""

    # Records token ARGV[1] (valid ARGV[2] ms) in user hash KEYS[1]; ARGV[3] is the most tokens kept.
    # Guarantees: does nothing for a user that does not exist (answers false); drops expired tokens
    # and then the oldest ones so that at most ARGV[3] remain; touches no other field.
    # Answers {now ms, expiry ms} by the server's clock.
    ISSUE = LuaScript(
        """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
""" + LUA_NOW_MS + """
local prefix = ARGV[4]
local fields = redis.call('HGETALL', KEYS[1])
local live = {}
for i = 1, #fields, 2 do
  if string.sub(fields[i], 1, #prefix) == prefix then
    local expiry = tonumber(fields[i + 1])
    if expiry <= now then
      redis.call('HDEL', KEYS[1], fields[i])
    else
      live[#live + 1] = {expiry, fields[i]}
    end
  end
end
local keep = tonumber(ARGV[3]) - 1
if #live > keep then
  table.sort(live, function(a, b) return a[1] < b[1] end)
  for i = 1, #live - keep do redis.call('HDEL', KEYS[1], live[i][2]) end
end
local expiry = now + tonumber(ARGV[2])
redis.call('HSET', KEYS[1], prefix .. ARGV[1], ms(expiry))
return {ms(now), ms(expiry)}
"""
    )

    def __init__(
        self, client: RedisClient, keys: RedisKeys, *, ttl: int, max_outstanding: int
    ) -> None:
        self.client = client
        self.keys = keys
        self.ttl_ms = int(ttl * 1000)
        self.max_outstanding = max(1, int(max_outstanding))

    def issue(self, username: str) -> Challenge | None:
        """A new token for ``username``; ``None`` when there is no such user (nothing written)."""
        if not is_valid_username(username):
            return None
        token = new_challenge_token()
        answer = self.ISSUE(
            self.client,
            [self.keys.user(username)],
            [token, self.ttl_ms, self.max_outstanding, CHALLENGE_FIELD_PREFIX],
        )
        if not answer:
            return None
        self.client.set(
            self.keys.pending_challenge(family_id_for_challenge(token)), username, px=self.ttl_ms
        )
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

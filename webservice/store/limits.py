"""Brute-force limits: failed logins, and the rate of ``getchallenge`` per client address.

**Failed logins** (API ``login`` and the web login form count together) count in three
counters, each in a fixed window that starts at its first failure and lasts
``LOGIN_FAILURE_WINDOW`` seconds (``P:login-failures:...``, see keys.py):

- the username *at this address* (``LOGIN_FAILURE_LIMIT``);
- the address, over all usernames (``LOGIN_ADDRESS_FAILURE_LIMIT``);
- the username, over all addresses (``LOGIN_FAILURE_LIMIT``), except the user's *known
  addresses*: those it logged in from successfully in the last 30 days (the 16 most recent,
  ``P:known-addresses:<name>``). Logins from a known address are neither held nor counted by it.

Once a counter that holds a login has reached its limit, the login is refused with
TOO_MANY_REQUESTS until the window ends, before any access key or password is looked at; such
refusals are not counted, so the window never grows. So guessing a username stays at the limit
per window from all unknown addresses together, while nobody elsewhere can lock the user out of
an address it uses (README: what an attacker can force). A successful login deletes the
username's counters (not the address's: one valid account must not clear an address that is
trying others) and remembers the address. Every failed login counts, except one whose proof was
right but whose token had just been used.

A login reads the counters and its address's entry in the round trip that reads the user (GET
and PTTL, and HGET, next to HGETALL in one pipeline), counts a failure in the round trip that
writes its audit entry, and resets in the round trip that starts the session, so limits cost a
login no round trip; remembering the address costs one, the first time (and once a day). Counting is one
Lua script per counter (INCR and, for the first failure, PEXPIRE, atomically), so concurrent
workers never lose a count and a counter can never live without its expiry. The check and the
count are two round trips apart: logins that are already between them when a counter reaches
its limit still finish, so at most the number of logins in flight at that moment (bounded by the
workers) may be tried beyond it.

**getchallenge** is limited per client address by a token bucket (``CHALLENGE_RATE_LIMIT`` per
second, bursts of ``CHALLENGE_RATE_BURST``) on ``P:rate:getchallenge:<address>``, with the Redis
server's clock (:data:`TOKEN_BUCKET`): a generous bound that stops floods of challenges, never a
client that logs in dozens of times a second. On a single Redis the token is taken by the script
that issues the challenge (store/challenges.py), on a Redis Cluster in a round trip of its own.

Why scripts of our own and not Flask-Limiter: Flask-Limiter checks and counts every request in
round trips of its own before the view, while these limits count only failures, must be read
together with the user record and reset by a success, and have to ride in the two round trips
a login already makes.

Limits are per client address as the WSGI server sees it: behind a reverse proxy, make the
proxy's forwarded address the request's (e.g. werkzeug's ProxyFix), or every client shares one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from webservice.store.client import RedisClient
from webservice.store.keys import RedisKeys
from webservice.store.round_trip import Change, Participant, send
from webservice.store.scripts import CLOCK, LuaScript
from webservice.store.users import is_valid_username

# Counts one failure in counter KEYS[1]; ARGV[1] is the window in ms.
# Guarantees: the count is exact under any concurrency, and the counter always expires: the window
# starts at its first failure, and a counter found without an expiry gets one.
_COUNT_FAILURE = LuaScript(
    """
local n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return n
"""
)

# Remembers address ARGV[1] in the known addresses KEYS[1] of a user (a hash: address -> ms of
# its last successful login), for ARGV[2] ms; keeps the ARGV[3] most recent.
# Guarantees: the record expires ARGV[2] ms after its newest success and never holds more than
# ARGV[3] addresses. Returns the number of addresses kept.
_REMEMBER_ADDRESS = LuaScript(
    CLOCK,
    """
local now = now_ms()
redis.call('HSET', KEYS[1], ARGV[1], ms(now))
local fields = redis.call('HGETALL', KEYS[1])
local entries = {}
for i = 1, #fields, 2 do
  if now - tonumber(fields[i + 1]) > tonumber(ARGV[2]) then
    redis.call('HDEL', KEYS[1], fields[i])
  else
    entries[#entries + 1] = {tonumber(fields[i + 1]), fields[i]}
  end
end
table.sort(entries, function(a, b) return a[1] > b[1] end)
for i = tonumber(ARGV[3]) + 1, #entries do redis.call('HDEL', KEYS[1], entries[i][2]) end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return math.min(#entries, tonumber(ARGV[3]))
""",
)

#: A token bucket, as a function for scripts: ``take_token(key, rate, burst, now)`` takes one
#: token from the bucket ``key`` (``rate`` tokens per second, at most ``burst`` kept) at ``now``
#: (ms, the server's clock) and answers 0 when there was one, else the ms until there is one.
#: Guarantees: a refusal changes nothing; an idle bucket expires. Needs :data:`CLOCK`'s ``ms``.
TOKEN_BUCKET = """
local function take_token(key, rate, burst, now)
  local state = redis.call('HMGET', key, 'n', 't')
  local tokens = tonumber(state[1]) or burst
  local last = tonumber(state[2]) or now
  if now > last then tokens = math.min(burst, tokens + (now - last) * rate / 1000) end
  if tokens < 1 then
    return math.max(1, math.ceil((1 - tokens) * 1000 / rate))
  end
  redis.call('HSET', key, 'n', tostring(tokens - 1), 't', ms(math.max(now, last)))
  redis.call('PEXPIRE', key, math.ceil(burst * 1000 / rate) + 1000)
  return 0
end
"""

# Takes one token from bucket KEYS[1] (ARGV[1] tokens per second, at most ARGV[2] kept).
# Answers 0 when there was one (and takes it), else the ms until there is one.
# Guarantees: atomic, by the server's clock; a refusal changes nothing; an idle bucket expires.
_TAKE_TOKEN = LuaScript(
    CLOCK,
    TOKEN_BUCKET,
    "return take_token(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), now_ms())",
)


class LoginLimiter:
    """The failed-login counters: per username and client address, per client address, and per
    username for the addresses it is not known from."""

    SCRIPTS = (_COUNT_FAILURE,)

    def __init__(
        self,
        client: RedisClient,
        keys: RedisKeys,
        *,
        user_limit: int,
        address_limit: int,
        window: int,
        known_address_days: float = 30,
        known_addresses: int = 16,
    ) -> None:
        self.client = client
        self.keys = keys
        self.user_limit = int(user_limit)
        self.address_limit = int(address_limit)
        self.window_ms = max(1, int(window * 1000))
        self.known_ms = max(1, int(known_address_days * 86_400_000))
        self.known_addresses = max(1, int(known_addresses))

    def attempt(self, username: str, address: str) -> LoginAttempt:
        """The counters a login of ``username`` from ``address`` is held to (a name that cannot
        be a username has none of its own)."""
        pair = everyone = known = None
        if self.user_limit > 0 and is_valid_username(username):
            pair = Counter(self.keys.login_failures_of_user_at(username, address), self.user_limit)
            everyone = Counter(self.keys.login_failures_of_user(username), self.user_limit)
            known = self.keys.known_addresses(username)
        by_address = (
            Counter(self.keys.login_failures_of_address(address), self.address_limit)
            if self.address_limit > 0
            else None
        )
        return LoginAttempt(self, address, pair, everyone, by_address, known)


@dataclass
class Counter:
    """One failure counter as a login read it."""

    key: str
    limit: int
    count: int = 0
    ttl_ms: int = 0

    @property
    def exhausted(self) -> bool:
        # A counter without expiry (ttl -1) cannot happen; it is not trusted to refuse, and the
        # next failure gives it one.
        return self.count >= self.limit and self.ttl_ms > 0


class LoginAttempt:
    """One login's view of its failure counters, and whether its address is known for its user.

    Use: ride along the round trip that reads the user (it reads the counters), refuse when
    ``retry_after`` is set; then ``count_failure``, or let ``success()`` ride with the login.
    """

    def __init__(
        self,
        limiter: LoginLimiter,
        address: str,
        pair: Counter | None,
        everyone: Counter | None,
        by_address: Counter | None,
        known_key: str | None,
    ) -> None:
        self.limiter = limiter
        self.address = address
        self.pair = pair
        self.everyone = everyone
        self.by_address = by_address
        self.known_key = known_key
        #: When a login of this user last succeeded from this address (ms), if lately.
        self.known_since: int | None = None

    @property
    def known(self) -> bool:
        """Whether a login of this user succeeded from this address lately."""
        return self.known_since is not None

    @property
    def _read(self) -> list[Counter]:
        return [c for c in (self.pair, self.everyone, self.by_address) if c is not None]

    @property
    def counters(self) -> list[Counter]:
        """The counters that hold this login: the username's own only for unknown addresses."""
        return [
            c for c in (self.pair, None if self.known else self.everyone, self.by_address)
            if c is not None
        ]  # fmt: skip

    def queue(self, pipe: Any, change: Change) -> None:
        """Reads the counters in the round trip that reads the user (a round_trip.Participant):
        GET and PTTL of each, and whether the address is known."""
        for counter in self._read:
            pipe.get(counter.key)
            pipe.pttl(counter.key)
        if self.known_key is not None:
            pipe.hget(self.known_key, self.address)

    def sent(self, replies: list[Any]) -> None:
        for i, counter in enumerate(self._read):
            count, ttl = replies[2 * i], replies[2 * i + 1]
            counter.count = int(count) if count else 0
            counter.ttl_ms = int(ttl)
        if self.known_key is not None and replies[-1]:
            self.known_since = int(replies[-1])

    @property
    def retry_after(self) -> int | None:
        """Seconds until this login may be tried again; ``None`` when it may be tried now."""
        waits = [counter.ttl_ms for counter in self.counters if counter.exhausted]
        return math.ceil(max(waits) / 1000) if waits else None

    @property
    def reaches_limit(self) -> bool:
        """Whether one more failure uses up a limit (as far as the counters read tell)."""
        return any(counter.count + 1 >= counter.limit for counter in self.counters)

    def count_failure(self, riders: Sequence[Participant] = ()) -> None:
        """Counts this failed login, with the ``riders``, in one round trip."""

        def own(pipe: Any) -> None:
            for counter in self.counters:
                _COUNT_FAILURE.queue(pipe, [counter.key], [self.limiter.window_ms])

        send(self.limiter.client, own, riders, Change(), self.limiter.SCRIPTS)

    def success(self) -> Participant:
        """The reset of the username's counters that held failures when the login read them,
        to ride with the login's family creation (repeatable; sent whether or not the family
        then starts). A counter that was empty is left alone: a failure counted since by a
        concurrent login stays counted."""
        return _ResetCounters(
            [c.key for c in (self.pair, self.everyone) if c is not None and c.count]
        )

    def remember(self, now_ms: int) -> None:
        """After a successful login: remembers its address as known for the user, in a round
        trip of its own, unless it was remembered within the last day (so a user's logins from
        its usual address cost nothing more)."""
        if self.known_key is None:
            return
        if self.known_since is not None and now_ms - self.known_since < _REMEMBERED_FOR_MS:
            return
        limiter = self.limiter
        _REMEMBER_ADDRESS(
            limiter.client,
            [self.known_key],
            [self.address, limiter.known_ms, limiter.known_addresses],
        )


#: How long a remembered address goes without its time being refreshed.
_REMEMBERED_FOR_MS = 86_400_000


class _ResetCounters:
    """Deletes failure counters (repeatable) in another change's round trip."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = keys

    def queue(self, pipe: Any, change: Change) -> None:
        # One DEL each: on a Redis Cluster the counters live in different slots.
        for key in self.keys:
            pipe.delete(key)

    def sent(self, replies: list[Any]) -> None:
        pass


@dataclass(frozen=True)
class RateBucket:
    """One client address's getchallenge bucket: its key, and its rate (tokens per second) and
    burst (most tokens kept), as :data:`TOKEN_BUCKET` takes them."""

    key: str
    rate: float
    burst: int


class RateLimited(Exception):
    """A request refused by a rate limit: ``wait_ms`` until the next would be allowed."""

    def __init__(self, wait_ms: int) -> None:
        super().__init__(f"rate limited for {wait_ms} ms")
        self.wait_ms = wait_ms


class ChallengeRateLimit:
    """The getchallenge token bucket of each client address (its settings).

    A getchallenge takes its token inside the script that issues the challenge on a single
    Redis, else in a round trip of its own first (:func:`take_token`; store/challenges.py)."""

    def __init__(self, keys: RedisKeys, *, rate: float, burst: int) -> None:
        self.keys = keys
        self.rate = float(rate)
        self.burst = max(1, int(burst))

    def bucket(self, address: str) -> RateBucket | None:
        """The bucket of client ``address``; ``None`` when the limit is off."""
        if self.rate <= 0:
            return None
        return RateBucket(self.keys.challenge_rate(address), self.rate, self.burst)


def take_token(client: RedisClient, bucket: RateBucket) -> None:
    """Takes a token from ``bucket`` (one round trip); raises :class:`RateLimited` when it has
    none."""
    wait_ms = int(_TAKE_TOKEN(client, [bucket.key], [bucket.rate, bucket.burst]))
    if wait_ms:
        raise RateLimited(wait_ms)

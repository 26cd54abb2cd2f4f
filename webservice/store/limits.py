"""Brute-force limits: failed logins per username and per client address, and the rate of
``getchallenge`` per client address.

**Failed logins** (API ``login`` and the web login form count together). Each username and each
client address has a counter of failures in a fixed window that starts at its first failure and
lasts ``LOGIN_FAILURE_WINDOW`` seconds (``P:login-failures:...``, see keys.py). Once a counter has
reached its limit (``LOGIN_FAILURE_LIMIT`` per username, ``LOGIN_ADDRESS_FAILURE_LIMIT`` per
address) further logins of that name, or from that address, are refused with TOO_MANY_REQUESTS
until the window ends, before any access key or password is looked at; such refusals are not
counted, so the window never grows. A successful login deletes the counter of its username (not
that of the address: one valid account must not clear an address that is trying others). Every
failed login counts, except one whose proof was right but whose token had just been used.

A login reads both counters in the round trip that reads the user (GET and PTTL next to HGETALL
in one pipeline), counts a failure in the round trip that writes its audit entry, and resets in
the round trip that starts the session, so limits cost a login no round trip. Counting is one
Lua script per counter (INCR and, for the first failure, PEXPIRE, atomically), so concurrent
workers never lose a count and a counter can never live without its expiry. The check and the
count are two round trips apart: logins that are already between them when a counter reaches
its limit still finish, so at most the number of logins in flight at that moment (bounded by the
workers) may be tried beyond it.

**getchallenge** is limited per client address by a token bucket (``CHALLENGE_RATE_LIMIT`` per
second, bursts of ``CHALLENGE_RATE_BURST``), one Lua script on ``P:rate:getchallenge:<address>``
with the Redis server's clock: a generous bound that stops floods of challenges, never a client
that logs in dozens of times a second.

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

# Takes one token from bucket KEYS[1] (ARGV[1] tokens per second, at most ARGV[2] kept).
# Answers 0 when there was one (and takes it), else the ms until there is one.
# Guarantees: atomic, by the server's clock; a refusal changes nothing; an idle bucket expires.
_TAKE_TOKEN = LuaScript(
    CLOCK,
    """
local now = now_ms()
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'n', 't')
local tokens = tonumber(state[1]) or burst
local last = tonumber(state[2]) or now
if now > last then tokens = math.min(burst, tokens + (now - last) * rate / 1000) end
if tokens < 1 then
  return math.max(1, math.ceil((1 - tokens) * 1000 / rate))
end
redis.call('HSET', KEYS[1], 'n', tostring(tokens - 1), 't', ms(math.max(now, last)))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return 0
"""
)


class LoginLimiter:
    """The failed-login counters (per username and per client address)."""

    SCRIPTS = (_COUNT_FAILURE,)

    def __init__(
        self,
        client: RedisClient,
        keys: RedisKeys,
        *,
        user_limit: int,
        address_limit: int,
        window: int,
    ) -> None:
        self.client = client
        self.keys = keys
        self.user_limit = int(user_limit)
        self.address_limit = int(address_limit)
        self.window_ms = max(1, int(window * 1000))

    def attempt(self, username: str, address: str) -> LoginAttempt:
        """The counters a login of ``username`` from ``address`` is held to (a name that cannot
        be a username has none of its own)."""
        counters = []
        user_key = None
        if self.user_limit > 0 and is_valid_username(username):
            user_key = self.keys.login_failures_of_user(username)
            counters.append((user_key, self.user_limit))
        if self.address_limit > 0:
            counters.append((self.keys.login_failures_of_address(address), self.address_limit))
        return LoginAttempt(self, counters, user_key)


class LoginAttempt:
    """One login's view of the counters of its username and its client address.

    Use: ride along the round trip that reads the user (it reads the counters), refuse when
    ``retry_after`` is set; then ``count_failure``, or let ``success()`` ride with the login.
    """

    def __init__(
        self, limiter: LoginLimiter, counters: list[tuple[str, int]], user_key: str | None
    ) -> None:
        self.limiter = limiter
        self.counters = counters
        self.user_key = user_key
        self.counts = [0] * len(counters)
        self.ttls_ms = [0] * len(counters)

    def queue(self, pipe: Any, change: Change) -> None:
        """Reads the counters in the round trip that reads the user (a round_trip.Participant):
        GET and PTTL of each."""
        for key, _limit in self.counters:
            pipe.get(key)
            pipe.pttl(key)

    def sent(self, replies: list[Any]) -> None:
        for i in range(len(self.counters)):
            count, ttl = replies[2 * i], replies[2 * i + 1]
            self.counts[i] = int(count) if count else 0
            self.ttls_ms[i] = int(ttl)

    @property
    def retry_after(self) -> int | None:
        """Seconds until this login may be tried again; ``None`` when it may be tried now."""
        waits = [
            ttl
            for (_key, limit), count, ttl in zip(self.counters, self.counts, self.ttls_ms)
            # A counter without expiry (ttl -1) cannot happen; it is not trusted to refuse, and
            # the next failure gives it one.
            if count >= limit and ttl > 0
        ]
        return math.ceil(max(waits) / 1000) if waits else None

    @property
    def reaches_limit(self) -> bool:
        """Whether one more failure uses up a limit (as far as the counters read tell)."""
        return any(
            count + 1 >= limit for (_key, limit), count in zip(self.counters, self.counts)
        )

    def count_failure(self, riders: Sequence[Participant] = ()) -> None:
        """Counts this failed login, with the ``riders``, in one round trip."""

        def own(pipe: Any) -> None:
            for key, _limit in self.counters:
                _COUNT_FAILURE.queue(pipe, [key], [self.limiter.window_ms])

        send(self.limiter.client, own, riders, Change(), self.limiter.SCRIPTS)

    def success(self) -> Participant:
        """The reset of the username's counter, to ride with the login's family creation."""
        return _ResetCounter(self.user_key)


class _ResetCounter:
    """Deletes a failure counter (repeatable) in another change's round trip."""

    def __init__(self, key: str | None) -> None:
        self.key = key

    def queue(self, pipe: Any, change: Change) -> None:
        if self.key is not None:
            pipe.delete(self.key)

    def sent(self, replies: list[Any]) -> None:
        pass

    def cancelled(self) -> None:
        pass


class ChallengeRateLimit:
    """The getchallenge token bucket of each client address."""

    def __init__(self, client: RedisClient, keys: RedisKeys, *, rate: float, burst: int) -> None:
        self.client = client
        self.keys = keys
        self.rate = float(rate)
        self.burst = max(1, int(burst))

    def retry_after_ms(self, address: str) -> int:
        """0 when ``address`` may have a challenge now (taking it: one round trip), else the ms
        to wait. No round trip when the limit is off."""
        if self.rate <= 0:
            return 0
        return int(
            _TAKE_TOKEN(self.client, [self.keys.challenge_rate(address)], [self.rate, self.burst])
        )

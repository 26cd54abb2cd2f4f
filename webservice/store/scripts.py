"""Lua scripts: registered once, run by their SHA1, reloaded when Redis has forgotten them.

Every script is a class attribute of the store that runs it, with a header saying its KEYS, its
ARGV, what it returns and what it guarantees (redis-py's ``redis/lock.py`` is the model). A script
is self-contained: it may start with shared *functions* (:data:`CLOCK`), which it calls with
explicit arguments, but it never reads a local variable that another fragment defines.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from redis.exceptions import NoScriptError

from webservice.store.client import RedisClient
from webservice.store.direct import line_of

#: Functions for scripts that need the time: ``now_ms()`` is the Redis server's clock in
#: milliseconds, ``ms(n)`` writes a number of milliseconds without an exponent. Reading TIME before
#: writing needs effects replication: the default since Redis 7, switched on here for Redis 6.2.
CLOCK = """
if redis.replicate_commands then redis.replicate_commands() end
local function now_ms()
  local clock = redis.call('TIME')
  return tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
end
local function ms(n) return string.format('%.0f', n) end
"""


class LuaScript:
    """A Lua script run by its SHA1 (EVALSHA), loaded into Redis on first use.

    Redis forgets loaded scripts when it restarts or fails over; a ``NOSCRIPT`` answer is met by
    loading the script again and repeating the call, so callers never see it. In a pipeline, the
    round trip (round_trip.py) does the same for the scripts it was told about.
    """

    def __init__(self, *fragments: str) -> None:
        self.source = "\n".join(fragments)
        self.sha = hashlib.sha1(self.source.encode()).hexdigest()

    def __call__(self, client: RedisClient, keys: Sequence[str], args: Sequence[Any]) -> Any:
        line = line_of(client)
        try:
            return line.call("EVALSHA", self.sha, len(keys), *keys, *args)
        except NoScriptError:
            self.load(client)
            return line.call("EVALSHA", self.sha, len(keys), *keys, *args)

    def queue(self, pipe: Any, keys: Sequence[str], args: Sequence[Any]) -> None:
        """Adds a call to a pipeline (sent by :func:`webservice.store.round_trip.send`)."""
        pipe.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)

    def load(self, client: RedisClient) -> None:
        client.script_load(self.source)

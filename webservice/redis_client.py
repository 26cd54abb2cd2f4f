"""Creates the Redis client and runs the gateway's Lua scripts on it.

The client is made per process by the app factory; under gunicorn that is after the fork, so no two
workers share a socket. Timeouts are bounded: when Redis is down a request fails with
SERVICE_UNAVAILABLE within twice ``REDIS_CONNECT_TIMEOUT`` (refused connections fail at once), or
twice ``REDIS_SOCKET_TIMEOUT`` for a hung server (one retry), and the next request reconnects by
itself once Redis is back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Union

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.exceptions import NoScriptError
from redis.retry import Retry

RedisClient = Union[redis.Redis, RedisCluster]

# Scripts that need the time start with this: the server's clock in milliseconds as ``now``,
# and ``ms(n)`` to write a number of milliseconds without an exponent. Reading TIME before writing needs
# effects replication, the default since Redis 7 and switched on here for Redis 6.2.
LUA_NOW_MS = """
if redis.replicate_commands then redis.replicate_commands() end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local function ms(n) return string.format('%.0f', n) end
"""


def connect(settings: Mapping[str, Any], *, decode_responses: bool = True) -> RedisClient:
    """A client for ``REDIS_URL`` (a cluster seed node when ``REDIS_CLUSTER`` is set)."""
    options: dict[str, Any] = {
        "decode_responses": decode_responses,
        "socket_connect_timeout": float(settings["REDIS_CONNECT_TIMEOUT"]),
        "socket_timeout": float(settings["REDIS_SOCKET_TIMEOUT"]),
        # One immediate retry covers a pooled connection that a Redis restart left dead; more
        # retries would only stretch the time a request waits on a Redis that is really down.
        "retry": Retry(NoBackoff(), 1),
    }
    if settings["REDIS_CLUSTER"]:
        return RedisCluster.from_url(settings["REDIS_URL"], **options)
    return redis.Redis.from_url(settings["REDIS_URL"], health_check_interval=30, **options)


class LuaScript:
    """A Lua script run by its SHA1 (EVALSHA), loaded into Redis on first use.

    Redis forgets loaded scripts when it restarts or fails over; a ``NOSCRIPT`` answer is met by
    loading the script again and repeating the call, so callers never see it.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def __call__(self, client: RedisClient, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            self.load(client)
            return client.evalsha(self.sha, len(keys), *keys, *args)

    def queue(self, pipe: Any, keys: Sequence[str], args: Sequence[Any]) -> None:
        """Adds a call to a pipeline; run the pipeline with :func:`run_pipeline`."""
        pipe.evalsha(self.sha, len(keys), *keys, *args)

    def load(self, client: RedisClient) -> None:
        client.script_load(self.source)


def run_pipeline(
    client: RedisClient, build: Callable[[Any], None], scripts: Sequence[LuaScript]
) -> list[Any]:
    """Sends the commands ``build`` queues in one round trip (not a transaction).

    When Redis had forgotten one of ``scripts``, they are loaded and the whole pipeline is sent
    again, so every command in it must be safe to repeat.
    """
    def send() -> list[Any]:
        pipe = client.pipeline(transaction=False)
        build(pipe)
        return pipe.execute()

    try:
        return send()
    except NoScriptError:
        for script in scripts:
            script.load(client)
        return send()

"""Commands and pipelines sent on the client's own pooled connections, without redis-py's
per-call work.

Why it exists. Every authenticated operation checks its session: one Redis command, on the hot
path of nearly every request; every change (a login, a logout) is one pipeline. redis-py 8
spends more CPU around each of them than the socket I/O itself costs: it takes a connection from
the pool under a lock, checks with a non-blocking read that the pooled socket holds no stray
data, records its observability counters, dispatches events, and gives the connection back under
the lock again.
Measured in one process against a local Redis: a ``GET`` costs about 70 µs of CPU through the
client and about 35 µs as done here (``scripts/bench`` shows what it is worth per request).

How it is shaped. A call takes an idle connection straight from the pool's list of idle
connections (redis-py's ``ConnectionPool._available_connections``: a list pop, which is atomic,
so no lock is needed), sends the command, reads the reply and puts the connection back. The
pool's stray-data check is not needed, because a connection goes back only after its reply was
read whole (an error reply included); a connection that failed any other way is disconnected
before it goes back. Since the connections are the pool's own, a worker holds no more of them
than before, and what the pool does to its idle connections (closing them after a fork, or
when the Sentinel pool finds the master moved: client.MasterFollowingPool) applies to these
too. Once every :data:`CHECK_EVERY` seconds, and whenever no idle connection is there, a call takes
its connection through the pool's own ``get_connection`` instead, so that the pool's checks
(where the master is) still run when all traffic is on this path.

Commands are packed and replies read by wire.py (hiredis directly, redis-py's response
callbacks applied), or by redis-py's own code where wire.py cannot serve a connection.

Failures keep the client's rules (client.py): a ``ConnectionError`` (a pooled socket that a
restart or a failover left dead) is met by sending once more through the client, which still
has its own single retry, while a ``TimeoutError`` (a hung Redis) is not retried. A Redis
Cluster client (and any client without a connection pool) is simply called.

There is one line per client (:func:`line_of`), so every store that shares a client shares it.
"""

from __future__ import annotations

import os
import time
import weakref
from collections.abc import Callable
from typing import Any

import redis
from redis.exceptions import ConnectionError, DataError, ResponseError

from webservice.store import wire
from webservice.store.client import RedisClient

#: How often (seconds) a call takes its connection through the pool's ``get_connection``: the
#: Sentinel pool's default interval for re-asking where the master is (client.py).
CHECK_EVERY = 0.5


class DirectLine:
    """Runs commands and pipelines on the idle connections of ``client``'s pool (see the
    module)."""

    def __init__(self, client: RedisClient) -> None:
        self.client = client
        pool = getattr(client, "connection_pool", None) if isinstance(client, redis.Redis) else None
        #: None: every command goes through the client (a cluster, or a pool of another shape).
        self._pool: Any = (
            pool if isinstance(getattr(pool, "_available_connections", None), list) else None
        )
        self._check_at = 0.0

    def call(self, *args: Any, fallback: Callable[[], Any] | None = None) -> Any:
        """The reply to the command ``args``. On a dead connection, ``fallback`` (default: the
        same command through the client) gives the reply instead."""

        def exchange(connection: Any) -> Any:
            if wire.short_way(connection):
                return wire.call(connection, args)
            connection.send_packed_command(connection.pack_command(*args))
            return connection.read_response()

        return self._run(exchange, fallback or (lambda: self.client.execute_command(*args)))

    def execute(self, pipe: Any, raise_on_error: bool = True) -> list[Any]:
        """``pipe.execute(raise_on_error)`` for a redis-py pipeline (not a transaction) of this
        line's client: its replies; an error reply raised once every reply was read, or with
        ``raise_on_error`` False, answered in its place."""
        if pipe.transaction or pipe.watching or pipe.scripts:
            return pipe.execute(raise_on_error)

        commands = pipe.command_stack

        def exchange(connection: Any) -> list[Any]:
            if not (wire.short_way(connection) and wire.plain(commands)):
                return pipe._execute_pipeline(connection, commands, raise_on_error)
            replies = wire.run_pipeline(connection, commands, pipe.response_callbacks)
            if raise_on_error:
                pipe.raise_first_error(commands, replies)
            return replies

        replies = self._run(exchange, lambda: pipe.execute(raise_on_error))
        pipe.reset()
        return replies

    def _run(self, exchange: Callable[[Any], Any], fallback: Callable[[], Any]) -> Any:
        """``exchange`` on a connection taken from the pool, which goes back in step with Redis
        or disconnected; ``fallback`` instead when that connection turns out dead."""
        pool = self._pool
        if pool is None:
            return fallback()
        connection, borrowed = self._take(pool)
        try:
            reply = exchange(connection)
        except (ResponseError, DataError):
            # Error replies are read whole, and a command that cannot be encoded was never sent:
            # the connection is in step with Redis.
            self._give_back(pool, connection, borrowed)
            raise
        except ConnectionError:
            connection.disconnect()
            self._give_back(pool, connection, borrowed)
            return fallback()
        except BaseException:
            connection.disconnect()
            self._give_back(pool, connection, borrowed)
            raise
        self._give_back(pool, connection, borrowed)
        return reply

    def _take(self, pool: Any) -> tuple[Any, bool]:
        """An idle connection of the pool, and whether it was taken through ``get_connection``
        (True: the pool's own checks ran, and ``release`` must give it back)."""
        now = time.monotonic()
        if now < self._check_at and pool.pid == os.getpid():
            try:
                return pool._available_connections.pop(), False
            except IndexError:
                pass
        else:
            self._check_at = now + CHECK_EVERY
        return pool.get_connection(), True

    @staticmethod
    def _give_back(pool: Any, connection: Any, borrowed: bool) -> None:
        if borrowed:
            pool.release(connection)
        else:
            pool._available_connections.append(connection)


_lines: weakref.WeakKeyDictionary[Any, DirectLine] = weakref.WeakKeyDictionary()


def line_of(client: RedisClient) -> DirectLine:
    """The direct line of ``client`` (made on first use)."""
    line = _lines.get(client)
    if line is None:
        line = _lines[client] = DirectLine(client)
    return line

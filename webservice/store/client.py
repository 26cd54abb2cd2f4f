"""Creates the Redis client: one Redis, a Redis Cluster, or a master found through Sentinel.

The client is made per process by the app factory; under gunicorn that is after the fork, so no two
workers share a socket. Timeouts are bounded: when Redis is down a request fails with
SERVICE_UNAVAILABLE within twice ``REDIS_CONNECT_TIMEOUT`` (refused connections fail at once; an
unreachable host is tried twice), or once ``REDIS_SOCKET_TIMEOUT`` for a hung server (a timeout is
not retried), and the next request reconnects by itself once Redis is back.

Three deployments, one code path: a single Redis (``REDIS_URL``), a Redis Cluster (``REDIS_CLUSTER``
with a seed node in ``REDIS_URL``), or a master watched by Redis Sentinel (``REDIS_SENTINELS`` and
``REDIS_SENTINEL_MASTER``; the client asks the sentinels where the master is, and again after a
failover). Every client connects on first use, so the gateway starts while Redis is unreachable.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterPipeline, RedisCluster
from redis.connection import SSLConnection, parse_url
from redis.exceptions import RedisClusterException
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool


def connect(settings: Mapping[str, Any], *, decode_responses: bool = True) -> RedisClient:
    """A client for ``REDIS_URL``: through Sentinel when ``REDIS_SENTINELS`` lists sentinels, a
    cluster seed node when ``REDIS_CLUSTER`` is set, else a single Redis."""
    options: dict[str, Any] = {
        "decode_responses": decode_responses,
        **_bounded(settings),
    }
    if settings.get("REDIS_SENTINELS"):
        return _sentinel_master(settings, options)
    if settings["REDIS_CLUSTER"]:
        url = settings["REDIS_URL"]
        return ClusterClient(lambda: RedisCluster.from_url(url, **options))
    return redis.Redis.from_url(settings["REDIS_URL"], health_check_interval=30, **options)


def _bounded(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The timeouts and the retry that bound how long a request waits for Redis."""
    return {
        "socket_connect_timeout": float(settings["REDIS_CONNECT_TIMEOUT"]),
        "socket_timeout": float(settings["REDIS_SOCKET_TIMEOUT"]),
        # One immediate retry covers a pooled connection that a Redis restart (or a failover) left
        # dead; more retries would only stretch the time a request waits on a Redis that is
        # really down. A timeout is not retried: a hung Redis would make every request wait twice
        # the socket timeout. (REDIS_RETRIES is not a setting: the readiness probe asks for none.)
        "retry": Retry(
            NoBackoff(),
            int(settings.get("REDIS_RETRIES", 1)),
            supported_errors=(redis.exceptions.ConnectionError,),
        ),
    }


def sentinel_addresses(value: Any) -> list[tuple[str, int]]:
    """``REDIS_SENTINELS`` as (host, port) pairs: a list of ``"host:port"`` (the JSON list of
    ``WSGATE_REDIS_SENTINELS``) or one comma-separated string of them."""
    items = value.split(",") if isinstance(value, str) else list(value)
    addresses = []
    for item in items:
        host, sep, port = str(item).strip().rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"REDIS_SENTINELS: {item!r} is not host:port")
        addresses.append((host.strip("[]"), int(port)))
    return addresses


def _sentinel_master(settings: Mapping[str, Any], options: dict[str, Any]) -> redis.Redis:
    """A client of the master that the sentinels name for ``REDIS_SENTINEL_MASTER``.

    The master's address comes from the sentinels; ``REDIS_URL`` still gives the database number,
    the credentials and ``rediss://`` (its host and port are not used). The sentinels are asked
    with the same bounded timeouts, authenticated with ``REDIS_SENTINEL_USERNAME`` /
    ``REDIS_SENTINEL_PASSWORD`` when they are set. How the client follows a failover: see
    :class:`MasterFollowingPool`.
    """
    from_url = parse_url(settings["REDIS_URL"])
    for unused in ("host", "port", "path"):
        from_url.pop(unused, None)
    if from_url.pop("connection_class", None) is SSLConnection:
        from_url["ssl"] = True
    sentinel_options = _bounded(settings)
    if settings.get("REDIS_SENTINEL_USERNAME"):
        sentinel_options["username"] = settings["REDIS_SENTINEL_USERNAME"]
    if settings.get("REDIS_SENTINEL_PASSWORD"):
        sentinel_options["password"] = settings["REDIS_SENTINEL_PASSWORD"]
    sentinel = Sentinel(
        sentinel_addresses(settings["REDIS_SENTINELS"]), sentinel_kwargs=sentinel_options
    )
    return sentinel.master_for(
        settings["REDIS_SENTINEL_MASTER"],
        connection_pool_class=MasterFollowingPool,
        check_interval=float(settings.get("REDIS_SENTINEL_CHECK_INTERVAL", 0.5)),
        health_check_interval=30,
        **from_url,
        **options,
    )


class MasterFollowingPool(SentinelConnectionPool):
    """redis-py's Sentinel pool, which also re-asks the sentinels where the master is, at most
    every ``check_interval`` seconds, when it hands out a connection.

    redis-py asks the sentinels only when it opens a connection. After a failover that leaves the
    former master running (``SENTINEL FAILOVER``, a network partition), its pooled connections go
    on working, and writing there, until the sentinels demote that master and close its clients,
    about ten seconds later with Redis 7's defaults: everything written there meanwhile is lost
    when it resyncs from the new master. With this check, once the sentinels name the new master,
    the pool drops its idle connections to the old one and does not take back those in use, so
    the gateway moves within ``check_interval``. Sentinels that cannot be reached leave the pool
    on the master it knows (the request that asked waits for their bounded timeouts).
    ``check_interval`` 0 leaves redis-py's behaviour.
    """

    def __init__(self, service_name: str, sentinel_manager: Sentinel, **kwargs: Any) -> None:
        self.check_interval = float(kwargs.pop("check_interval", 0))
        self._next_check = 0.0
        super().__init__(service_name, sentinel_manager, **kwargs)

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        now = time.monotonic()
        if self.check_interval > 0 and now >= self._next_check:
            self._next_check = now + self.check_interval
            try:
                # Closes the idle connections when the address changed (SentinelConnectionPool).
                self.get_master_address()
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                pass
        return super().get_connection(*args, **kwargs)


class ClusterUnavailableError(redis.exceptions.ConnectionError):
    """No node of the Redis Cluster could be reached.

    redis-py reports that as ``RedisClusterException``, which is not a ``RedisError``; the gateway
    answers every ``RedisError`` with SERVICE_UNAVAILABLE, so it is raised as this one instead.
    """


class _ClusterErrors:
    """Turns redis-py's ``RedisClusterException`` into :class:`ClusterUnavailableError`."""

    def __init__(self, target: Any) -> None:
        self._target = target

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._target, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                result = attribute(*args, **kwargs)
            except RedisClusterException as error:
                raise ClusterUnavailableError(str(error)) from error
            if result is self._target:  # a pipeline's queueing methods chain
                return self
            if isinstance(result, ClusterPipeline):
                return _ClusterErrors(result)
            return result

        return call

    def __len__(self) -> int:
        return len(self._target)

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._target.__exit__(*exc_info)


class ClusterClient(_ClusterErrors):
    """The gateway's Redis Cluster client: a ``RedisCluster`` made on first use.

    redis-py's ``RedisCluster`` connects to the cluster when it is made and fails if no node
    answers; made lazily, the gateway starts while the cluster is unreachable (a gunicorn worker
    that cannot build its app would stop gunicorn) and connects once it is back, as it does with
    a single Redis. Every command and pipeline goes to the ``RedisCluster`` unchanged, with its
    failures reported as ``RedisError`` (see :class:`ClusterUnavailableError`).
    """

    def __init__(self, factory: Callable[[], RedisCluster]) -> None:
        self._factory = factory
        self._client: RedisCluster | None = None
        self._lock = threading.Lock()

    @property
    def _target(self) -> RedisCluster:  # type: ignore[override]
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    try:
                        self._client = self._factory()
                    except RedisClusterException as error:
                        raise ClusterUnavailableError(str(error)) from error
                client = self._client
        return client

    @property
    def cluster(self) -> RedisCluster:
        """The ``RedisCluster`` itself (made now if it was not yet)."""
        return self._target

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


RedisClient = redis.Redis | RedisCluster | ClusterClient


def is_cluster(client: RedisClient) -> bool:
    """Whether ``client`` talks to a Redis Cluster (without connecting to it)."""
    return isinstance(client, ClusterClient | RedisCluster)

"""Replicas confirm a change before the gateway acknowledges it: Redis ``WAIT``.

Redis replicates asynchronously: a master answers a write before any replica has it, and a
failover promotes a replica that may lack the master's last writes. A logout acknowledged in that
window would come back to life. With ``REDIS_WAIT_REPLICAS`` = N ≥ 1, every revocation (and every
new login) ends with ``WAIT N REDIS_WAIT_TIMEOUT``, which answers how many replicas have
acknowledged all the writes the connection it is sent on has made; fewer than N raises
:class:`NotConfirmed`. WAIT takes nothing back: the change stays made on the master, and the
caller is told to retry (a retry of a revocation finds it made, and confirms it again).

WAIT confirms the writes *of its connection*, so it always follows a write of its own on that
connection (a short-lived key in the slot of one of the change's families): since a master's
replication stream is one sequence, that write covers everything the master did before it, the
change included, even when the change's commands went out on another connection (a script, then
a pipeline) or changed nothing themselves.

One Redis, or a master found through Sentinel: that write and WAIT end the change's own pipeline,
in its one round trip. A Redis Cluster has a master per slot range: redis-py cannot route a WAIT
(it has no key) in a cluster pipeline, and each master can confirm only its own writes; once the
change's pipeline is sent, each master holding one of the change's families is asked on a
connection of its own, in one more round trip per master.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from redis.cluster import RedisCluster
from redis.exceptions import RedisError

from webservice.store.client import ClusterClient, RedisClient
from webservice.store.keys import RedisKeys

#: How long the write that WAIT follows stays (it only has to exist until WAIT has answered).
_MARK_MS = 10_000


class NotConfirmed(RedisError):
    """Fewer than REDIS_WAIT_REPLICAS replicas confirmed a change within REDIS_WAIT_TIMEOUT. The
    change is made on the master; a failover before the replicas have it could undo it."""

    def __init__(self, what: str, confirmed: int, wanted: int) -> None:
        super().__init__(f"{what} confirmed by {confirmed} of {wanted} replica(s) in time")
        #: ``Logout`` (a revocation) or ``Login``: what the caller is told was not confirmed.
        self.what = what
        self.confirmed = confirmed
        self.wanted = wanted
        #: The replies to the change's own commands (round_trip.send sets them).
        self.replies: list[Any] = []
        #: How many families the change ended, when it counts them (SessionStore sets it).
        self.ended: int | None = None


@dataclass(frozen=True)
class Replicas:
    """The policy: how many replicas must confirm a change, within how many milliseconds."""

    keys: RedisKeys
    #: REDIS_WAIT_REPLICAS; 0: nothing is confirmed (Redis's own asynchronous replication).
    count: int = 0
    #: REDIS_WAIT_TIMEOUT, in milliseconds (at least 1: WAIT's 0 would wait for ever).
    timeout_ms: int = 500
    #: REDIS_WAIT_RETRY_GRACE, in milliseconds: how long a revoked family is remembered, so that
    #: a retry of its revocation is told it succeeded.
    grace_ms: int = 120_000

    @classmethod
    def of(cls, settings: Mapping[str, Any], keys: RedisKeys) -> Replicas:
        """The policy the settings give; raises ValueError for settings that cannot work."""
        count = int(settings["REDIS_WAIT_REPLICAS"])
        timeout_ms = int(settings["REDIS_WAIT_TIMEOUT"])
        grace_ms = int(float(settings["REDIS_WAIT_RETRY_GRACE"]) * 1000)
        if count < 0:
            raise ValueError("REDIS_WAIT_REPLICAS must be 0 or more")
        if count and timeout_ms < 1:
            raise ValueError("REDIS_WAIT_TIMEOUT must be at least 1 ms (WAIT 0 never times out)")
        if count and timeout_ms >= float(settings["REDIS_SOCKET_TIMEOUT"]) * 1000:
            raise ValueError(
                "REDIS_WAIT_TIMEOUT must be shorter than REDIS_SOCKET_TIMEOUT, or an unconfirmed "
                "change would look like a hung Redis"
            )
        if count and grace_ms < 1000:
            raise ValueError("REDIS_WAIT_RETRY_GRACE must be at least 1 second")
        return cls(keys, count, timeout_ms, grace_ms)

    @property
    def enabled(self) -> bool:
        return self.count > 0

    def of_change(self, what: str, families: Iterable[str]) -> Confirmation | None:
        """The confirmation of a change to ``families`` (``what``: ``Logout`` or ``Login``);
        ``None`` when nothing is to be confirmed."""
        if not self.enabled:
            return None
        return Confirmation(self, what, tuple(dict.fromkeys(families)))


@dataclass(frozen=True)
class Confirmation:
    """The confirmation of one change: WAIT after a write in the slot of each of its families."""

    replicas: Replicas
    what: str
    families: tuple[str, ...]

    def queue(self, pipe: Any) -> None:
        """Ends a pipeline to one Redis (single or Sentinel's master) with the write and WAIT;
        :meth:`check` reads their replies."""
        pipe.set(self._mark_key(self.families[0] if self.families else ""), "1", px=_MARK_MS)
        pipe.execute_command("WAIT", self.replicas.count, self.replicas.timeout_ms)

    #: How many replies :meth:`queue` adds to its pipeline.
    QUEUED = 2

    def check(self, replies: list[Any]) -> None:
        """Raises NotConfirmed unless the WAIT among ``replies`` (:meth:`queue`'s) says enough
        replicas have the change."""
        self._verdict(int(replies[-1]))

    def on_cluster(self, cluster: RedisCluster) -> None:
        """Asks each master that holds one of the families, on a connection of its own (the
        write, then WAIT, in one pipeline); raises NotConfirmed unless every one confirms."""
        masters: dict[str, tuple[Any, str]] = {}
        for family in self.families:
            key = self._mark_key(family)
            node = cluster.get_node_from_key(key)
            masters.setdefault(node.name, (node, key))
        for node, key in masters.values():
            pipe = cluster.get_redis_connection(node).pipeline(transaction=False)
            pipe.set(key, "1", px=_MARK_MS)
            pipe.execute_command("WAIT", self.replicas.count, self.replicas.timeout_ms)
            self._verdict(int(pipe.execute()[-1]))

    def _verdict(self, confirmed: int) -> None:
        if confirmed < self.replicas.count:
            raise NotConfirmed(self.what, confirmed, self.replicas.count)

    def _mark_key(self, family: str) -> str:
        return self.replicas.keys.confirmation(family)


def cluster_of(client: RedisClient) -> RedisCluster | None:
    """The ``RedisCluster`` behind ``client``, or ``None`` for one Redis (or Sentinel's master)."""
    if isinstance(client, ClusterClient):
        return client.cluster
    return client if isinstance(client, RedisCluster) else None

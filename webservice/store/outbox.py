"""The logout outbox: the notifications that session families ended, waiting to be delivered to
the receivers (``LOGOUT_RECEIVERS``), in one Redis stream (``P:logout-outbox``, see keys.py).

One entry per ended family and receiver, flat strings:

``sid``       the family's id: the part before the ``.`` of each of its session ids and before
              the ``:`` of each of its public handles; never a secret
``sub``       the wire ``userId`` of its user (``19x<id>``)
``user``      the username, when the change knew it (for operators; not sent)
``reason``    why the family ended (webservice.events: ``logout``, ``revoke``, ...)
``url``       where the logout token goes
``aud``       the token's audience for that receiver

The entry id gives the time it was written (the Redis server's clock). Entries are written in the
round trip that ends the family (:class:`PendingNotices`, a participant of that round trip), so
the logout itself waits for nothing else; the delivery processes read them through the consumer
group ``delivery`` (notifications/delivery.py): each entry is handed to one of them, stays
*pending* under it until it is delivered or given up on, and is then acknowledged and deleted. The
stream therefore holds only what is not yet delivered; it is capped at ``LOGOUT_OUTBOX_MAX_ENTRIES``
(``XADD MAXLEN ~``) so that receivers that never answer cannot grow it without bound. Entries given
up on go to ``P:logout-outbox:failed`` (capped the same way), where ``flask notifications retry``
finds them.

A pending entry belongs to the delivery process that read it for as long as that process keeps
renewing its claim (:meth:`LogoutOutbox.renew`): one whose process died is taken over by another
once it has been left alone for the lease (:meth:`LogoutOutbox.take_over`, ``XAUTOCLAIM``).
"""

from __future__ import annotations

from collections.abc import Sequence
import time
from dataclasses import dataclass, fields
from typing import Any

from redis.exceptions import ResponseError

from webservice.store.client import RedisClient
from webservice.store.keys import RedisKeys
from webservice.store.round_trip import Change
from webservice.store.users import USERS_ENTITY_PREFIX

#: The consumer group of the delivery processes.
GROUP = "delivery"


@dataclass(frozen=True)
class Receiver:
    """A service that wants logout tokens: where to POST them, and the ``aud`` they carry."""

    url: str
    audience: str


@dataclass(frozen=True)
class Notice:
    """One outbox entry (the module docstring has the fields)."""

    sid: str
    sub: str
    user: str
    reason: str
    url: str
    aud: str

    def fields(self) -> dict[str, str]:
        return {field.name: getattr(self, field.name) for field in fields(self)}

    @classmethod
    def of(cls, values: dict[str, str]) -> Notice:
        return cls(**{field.name: values.get(field.name, "") for field in fields(cls)})


@dataclass(frozen=True)
class OutboxEntry:
    """A notice with its stream id; for one given up on, also why, and its id in the outbox
    (``original_id``: when it was written)."""

    id: str
    notice: Notice
    why: str = ""
    original_id: str = ""

    @property
    def written_ms(self) -> int:
        """When the notice was written, by the Redis server's clock."""
        return int((self.original_id or self.id).partition("-")[0])

    def as_dict(self) -> dict[str, str]:
        answer = {"id": self.id, **self.notice.fields()}
        if self.why:
            answer.update(why=self.why, original_id=self.original_id)
        return answer


@dataclass(frozen=True)
class OutboxStats:
    """What the metrics show: entries not yet delivered, delivered and given up on (ever), and
    the age of the oldest entry not yet delivered (0 when there is none)."""

    queued: int
    delivered: int
    failed: int
    oldest_age_seconds: float


class LogoutOutbox:
    def __init__(self, client: RedisClient, keys: RedisKeys, max_entries: int = 100000) -> None:
        self.client = client
        self.keys = keys
        self.key = keys.logout_outbox()
        self.max_entries = max(1, int(max_entries))

    # --- writing, in the round trip of the change ----------------------------------------------

    def pending(self, receivers: Sequence[Receiver], reason: str) -> PendingNotices:
        """The notices of one change (a round_trip.Participant): one entry per family it ends
        and per receiver."""
        return PendingNotices(self, tuple(receivers), reason)

    def queue(self, pipe: Any, notice: Notice) -> None:
        pipe.xadd(self.key, notice.fields(), maxlen=self.max_entries, approximate=True)

    # --- delivery processes --------------------------------------------------------------------

    def join(self) -> None:
        """Makes sure the consumer group exists; it starts from the stream's beginning, so entries
        written before the first delivery process ever ran are delivered too."""
        try:
            self.client.xgroup_create(self.key, GROUP, id="0", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    def read_new(self, consumer: str, count: int, block_ms: int) -> list[OutboxEntry]:
        """Entries no delivery process has had yet, now pending under ``consumer``."""
        answer = self.client.xreadgroup(
            GROUP, consumer, {self.key: ">"}, count=max(1, count), block=block_ms or None
        )
        return [
            OutboxEntry(entry_id, Notice.of(values))
            for _stream, entries in answer or []
            for entry_id, values in entries
            if values
        ]

    def take_over(self, consumer: str, lease_ms: int, count: int) -> list[OutboxEntry]:
        """Pending entries that their process has left alone for ``lease_ms`` (it died: the
        living renew theirs), now pending under ``consumer``. Entries trimmed away meanwhile
        are acknowledged and dropped."""
        claimed: list[OutboxEntry] = []
        start = "0-0"
        while len(claimed) < count:
            answer = self.client.xautoclaim(
                self.key, GROUP, consumer, lease_ms, start_id=start, count=count - len(claimed)
            )
            start, entries = answer[0], answer[1]
            deleted = answer[2] if len(answer) > 2 else []
            if deleted:
                self.client.xack(self.key, GROUP, *deleted)
            claimed += [OutboxEntry(i, Notice.of(v)) for i, v in entries if v]
            if start in ("0-0", b"0-0"):
                break
        return claimed

    def forget_idle_consumers(self, idle_ms: int) -> None:
        """Removes from the group the consumers that hold nothing and have not asked for
        anything for ``idle_ms`` (stopped processes: every process gets a name of its own)."""
        for consumer in self.client.xinfo_consumers(self.key, GROUP):
            if int(consumer["pending"]) == 0 and int(consumer["idle"]) > idle_ms:
                self.client.xgroup_delconsumer(self.key, GROUP, consumer["name"])

    def renew(self, consumer: str, entry_ids: Sequence[str]) -> None:
        """Tells the others that ``consumer`` is still at work on these entries (resets their
        idle time, so :meth:`take_over` leaves them alone)."""
        if entry_ids:
            self.client.xclaim(self.key, GROUP, consumer, 0, list(entry_ids), justid=True)

    def delivered(self, entry_id: str) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.xack(self.key, GROUP, entry_id)
        pipe.xdel(self.key, entry_id)
        pipe.incr(self.keys.logout_outbox_delivered())
        pipe.execute()

    def give_up(self, entry: OutboxEntry, why: str) -> None:
        """Moves ``entry`` to the failed stream, saying why."""
        failed = {**entry.notice.fields(), "why": why, "original_id": entry.id}
        pipe = self.client.pipeline(transaction=False)
        pipe.xadd(
            self.keys.logout_outbox_failed(), failed, maxlen=self.max_entries, approximate=True
        )
        pipe.xack(self.key, GROUP, entry.id)
        pipe.xdel(self.key, entry.id)
        pipe.incr(self.keys.logout_outbox_given_up())
        pipe.execute()

    # --- operators -----------------------------------------------------------------------------

    def undelivered(self, count: int = 100) -> list[OutboxEntry]:
        """The oldest entries not yet delivered."""
        return [
            OutboxEntry(i, Notice.of(v)) for i, v in self.client.xrange(self.key, count=count)
        ]

    def failed(self, count: int = 100) -> list[OutboxEntry]:
        """The most recent entries given up on, oldest first."""
        entries = self.client.xrevrange(self.keys.logout_outbox_failed(), count=count)
        return [_failed_entry(i, v) for i, v in reversed(entries)]

    def retry(self, failed_id: str) -> str | None:
        """Puts the failed entry ``failed_id`` back in the outbox; answers its new id, or None
        when there is no such failed entry."""
        failed_key = self.keys.logout_outbox_failed()
        found = self.client.xrange(failed_key, min=failed_id, max=failed_id)
        if not found:
            return None
        notice = _failed_entry(*found[0]).notice
        pipe = self.client.pipeline(transaction=False)
        pipe.xadd(self.key, notice.fields(), maxlen=self.max_entries, approximate=True)
        pipe.xdel(failed_key, failed_id)
        new_id, _deleted = pipe.execute()
        return str(new_id)

    def stats(self) -> OutboxStats:
        """One round trip (on a cluster, one per node concerned). The age is by this host's
        clock against the Redis server's."""
        pipe = self.client.pipeline(transaction=False)
        pipe.xlen(self.key)
        pipe.xrange(self.key, count=1)
        pipe.get(self.keys.logout_outbox_delivered())
        pipe.get(self.keys.logout_outbox_given_up())
        queued, oldest, delivered, failed = pipe.execute()
        age = 0.0
        if oldest:
            written_ms = int(oldest[0][0].partition("-")[0])
            age = max(0.0, time.time() - written_ms / 1000)
        return OutboxStats(int(queued), int(delivered or 0), int(failed or 0), age)


def _failed_entry(entry_id: str, values: dict[str, str]) -> OutboxEntry:
    return OutboxEntry(
        entry_id, Notice.of(values), why=values.get("why", ""),
        original_id=values.get("original_id", ""),
    )  # fmt: skip


class PendingNotices:
    """The outbox entries of one change, sent in its round trip (round_trip.Participant): one per
    family the change ends and per receiver. Queued once: a round trip sent again does not
    write them twice."""

    def __init__(
        self, outbox: LogoutOutbox, receivers: tuple[Receiver, ...], reason: str
    ) -> None:
        self.outbox = outbox
        self.receivers = receivers
        self.reason = reason
        self.entry_ids: list[str] = []
        self._queued = False
        self._in_last_send = False

    def queue(self, pipe: Any, change: Change) -> None:
        self._in_last_send = not self._queued
        if self._queued or change.user_id is None:
            return
        sub = f"{USERS_ENTITY_PREFIX}{change.user_id}"
        for family in change.ended_families:
            for receiver in self.receivers:
                notice = Notice(
                    family, sub, change.username, self.reason, receiver.url, receiver.audience
                )
                self.outbox.queue(pipe, notice)
        self._queued = True

    def sent(self, replies: list[Any]) -> None:
        if self._in_last_send:
            self.entry_ids = [str(reply) for reply in replies]

    def cancelled(self) -> None:
        """Takes the notices back (the change did not happen); one round trip."""
        if self.entry_ids:
            self.outbox.client.xdel(self.outbox.key, *self.entry_ids)
            self.entry_ids = []
        self._queued = False

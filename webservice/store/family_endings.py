"""How SessionStore ends families together with other changes: the participants
(round_trip.Participant) FamilyEnding, which ends families in the round trip of another change,
Unindex, which drops ended families from their user's index, Reader, which reads an ended
marker in a round trip that confirms, and ExcessClaim, which claims the families a login leaves
beyond MAX_FAMILIES_PER_USER for that login alone to end; and FamilyCap, the user's oldest
families that the script opening a new one ends to keep that cap.

A user's index (keys.user_families) scores each family by its absolute expiry. A family that a
login has claimed for ending is scored by minus that expiry until the login ends it: counts of
live families read scores above 0 (it no longer counts), the sweep of expired entries drops
scores from minus now to now (a claimed family stays listed while it lives), and ending all of a
user's families reads every entry (a claimed family whose login died before ending it is ended
all the same).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from webservice.store.confirmation import NotConfirmed
from webservice.store.family_lua import INDEX_FUNCTIONS, StreamEntry
from webservice.store.round_trip import Change, Participant, Span, hand_out, queue_each, scripts_of
from webservice.store.scripts import CLOCK, LuaScript


def counted(end: Callable[[], list[Any]]) -> int:
    """How many families ``end`` ended (its replies: 1 for each that was live); an ending that is
    not confirmed says so as NotConfirmed.ended."""
    try:
        return sum(end())
    except NotConfirmed as unconfirmed:
        unconfirmed.ended = sum(unconfirmed.replies)
        raise


class Reader:
    """Reads in a round trip (one that confirms, see SessionStore._confirmed_ended)."""

    def __init__(self, queue: Callable[[Any], None]) -> None:
        self._queue = queue
        self.replies: list[Any] = []

    def queue(self, pipe: Any, change: Change) -> None:
        self._queue(pipe)

    def sent(self, replies: list[Any]) -> None:
        self.replies = replies


class FamilyEnding:
    """Families of one user ended in the round trip of another change (a round_trip.Participant):
    a login one past MAX_FAMILIES_PER_USER ends the oldest in the round trip that starts its own
    family, instead of in one more.

    The riders of the ending's own announcement travel inside it and are told of the ending (its
    ``Change``), not of the change that carries them. Once sent, ``count`` says how many of the
    families were still live.
    """

    def __init__(
        self,
        queue_end: Callable[[Any, str], None],
        end_scripts: Sequence[LuaScript],
        index_key: str,
        families: list[str],
        riders: Sequence[Participant],
        change: Change,
    ) -> None:
        #: SessionStore._queue_end: queues the end of one family (its reply 1 when it was live).
        self._queue_end = queue_end
        self.index_key = index_key
        self.families = families
        self.riders = riders
        self.change = change
        #: The scripts the round trip loads if Redis has forgotten them: ``end_scripts``, those
        #: ``queue_end`` may queue (SessionStore.RETIRE, handed in so that this module needs
        #: nothing of sessions.py), and the riders'.
        self.scripts = (*end_scripts, *scripts_of(riders))
        self.count = 0
        self._start = 0
        self._spans: list[Span] = []

    def queue(self, pipe: Any, change: Change) -> None:
        self._start = len(pipe)
        for family in self.families:
            self._queue_end(pipe, family)
        pipe.zrem(self.index_key, *self.families)
        self._spans = queue_each(pipe, self.riders, self.change)

    def sent(self, replies: list[Any]) -> None:
        self.count = sum(replies[: len(self.families)])
        hand_out(self._spans, replies, self._start)


class Unindex:
    """Drops ended families from their user's index, in the round trip that ends them."""

    def __init__(self, index_key: str, families: list[str]) -> None:
        self.index_key = index_key
        self.families = families

    def queue(self, pipe: Any, change: Change) -> None:
        if self.families:
            pipe.zrem(self.index_key, *self.families)

    def sent(self, replies: list[Any]) -> None:
        pass


class FamilyCap:
    """MAX_FAMILIES_PER_USER kept by the script that opens a user's new family (family_lua's
    ``opened_within_cap``): it indexes the family and ends the user's oldest others beyond
    ``most``, writing ``entry`` when any ended. Once sent, ``ended`` says how many did.

    The script builds the keys of the families it ends from their ids (``key_parts``,
    keys.family_key_parts), so only a single Redis can run it (SessionStore.one_step_endings).
    """

    def __init__(
        self,
        index_key: str,
        most: int,
        key_parts: tuple[str, str],
        entry: StreamEntry | None,
    ) -> None:
        self.index_key = index_key
        self.most = most
        self.key_parts = key_parts
        self.entry = entry
        self.ended = 0

    def keys(self) -> list[str]:
        """The open script's KEYS for it: the user's index, and the stream of the entry."""
        return [self.index_key] if self.entry is None else [self.index_key, self.entry.stream]

    def arguments(self, family_id: str) -> list[Any]:
        """The open script's ARGV for it, ``family_id`` the family it opens."""
        head, tail = self.key_parts
        entry = self.entry.arguments() if self.entry is not None else []
        return [family_id, self.most, head, tail, *entry]

    def answered(self, reply: Any) -> None:
        """Takes the open script's reply ({1, ended} once opened)."""
        self.ended = int(reply[1]) if isinstance(reply, list) else 0


class ExcessClaim:
    """The families a login leaves its user beyond MAX_FAMILIES_PER_USER, claimed for that login
    to end (a round_trip.Participant of the round trip that opens its family, after the family is
    indexed): where the script that opens the family cannot end them itself (a Redis Cluster,
    REDIS_WAIT_REPLICAS, a receiver that must hear of an ending first). The claim is one script on
    the user's index alone, so a cluster runs it too, and it is atomic: logins of one user at the
    same moment each claim different families, together exactly those beyond the cap, and the
    riders of each ending's announcement are told which families it ends before it ends them.

    Once sent, ``claimed`` maps each claimed family to its absolute expiry (ms).
    """

    #: KEYS: the user's index. ARGV: the family the login opened (never claimed), the cap.
    #: Returns the claimed families with their absolute expiry: {id, expiry, id, expiry, ...}.
    #: Guarantees: claims what family_lua's ``beyond_cap`` answers (the expired dropped, the
    #: oldest live unclaimed families other than ARGV[1] while more than the cap are left),
    #: rescoring each by minus its expiry: no later claim or count sees it, and ending every
    #: family of the user still finds it.
    CLAIM = LuaScript(
        CLOCK,
        INDEX_FUNCTIONS,
        """
local claimed = beyond_cap(KEYS[1], ARGV[1], tonumber(ARGV[2]), now_ms())
for i = 1, #claimed, 2 do
  redis.call('ZADD', KEYS[1], 'XX', '-' .. claimed[i + 1], claimed[i])
end
return claimed
""",
    )

    scripts = (CLAIM,)

    def __init__(self, index_key: str, family_id: str, most: int) -> None:
        self.index_key = index_key
        self.family_id = family_id
        self.most = most
        self.claimed: dict[str, int] = {}

    def queue(self, pipe: Any, change: Change) -> None:
        self.CLAIM.queue(pipe, [self.index_key], [self.family_id, self.most])

    def sent(self, replies: list[Any]) -> None:
        pairs = replies[0] or []
        self.claimed = {pairs[i]: int(float(pairs[i + 1])) for i in range(0, len(pairs), 2)}

    def release(self, pipe: Any) -> None:
        """Queues the claimed families' return to the count (their index entries scored by
        their expiry again, those still listed): for a login that opened nothing after all."""
        for family, expiry in self.claimed.items():
            pipe.zadd(self.index_key, {family: expiry}, xx=True)

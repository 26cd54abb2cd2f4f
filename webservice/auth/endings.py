"""Ending session families, announced: every ending sends ``family_ended`` (webservice.events),
so the audit trail writes it in the same round trip and metrics and the host hear of it.

With REDIS_WAIT_REPLICAS, an ending the replicas did not confirm in time raises NotConfirmed
(store/confirmation.py) once it is made on the master: it is announced as done all the same (it
is in force, and its retry finds nothing left to end), and the caller tells its client to retry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from webservice import events
from webservice.auth.trail import ending_entry
from webservice.events import RoundTrip, SessionEvent
from webservice.store.audit import AuditTrail
from webservice.store.confirmation import NotConfirmed
from webservice.store.family_endings import ExcessClaim, FamilyCap, FamilyEnding
from webservice.store.family_lua import StreamEntry
from webservice.store.round_trip import Change, send
from webservice.store.session_values import Session, TimedOut
from webservice.store.sessions import SessionStore
from webservice.store.tokens import SessionId


@contextmanager
def _made(round_trip: RoundTrip) -> Iterator[None]:
    """Calls the round trip's ``done`` once the change is made, confirmed or not."""
    try:
        yield
    except NotConfirmed as unconfirmed:
        if unconfirmed.ended is not None:
            round_trip.count = unconfirmed.ended
        round_trip.done()
        raise
    round_trip.done()


class Endings:
    def __init__(self, sessions: SessionStore, trail: AuditTrail) -> None:
        self.sessions = sessions
        #: Where the audit entry of an ending made in one step goes (:meth:`own_family`).
        self.trail = trail

    def one_step(self) -> bool:
        """Whether an ending may be made by the script of the change that causes it, and
        announced once made (``family_ended`` with ``audited``: the script writes the entry): on a
        single Redis (SessionStore.one_step_endings), while every receiver may hear of it then
        (events.hear_after_the_fact). A host's receiver, or logout notifications, which ride the
        ending's round trip, make endings announce first."""
        return self.sessions.one_step_endings and events.hear_after_the_fact(events.family_ended)

    def own_family(self, raw_session_id: object, event: SessionEvent) -> Session | str | None:
        """Ends the family of the caller's own ``api`` session ``raw_session_id`` in the round trip
        that checks it; answers the session it was, else why not (as SessionStore.lookup; nothing
        ended). ``None`` when it cannot be made so here: then check the session and end its family
        (:meth:`family`), two round trips.

        Only the check learns whose family it is, so the ending is announced once made: only
        while :meth:`one_step`, else it is :meth:`family`."""
        if not self.one_step():
            return None
        session_id = SessionId.parse(raw_session_id)
        if session_id is None:
            return "unknown"
        announced = event.but(handle=session_id.handle)
        ended = self.sessions.end_own(session_id, "api", self._scripted_entry(announced))
        if isinstance(ended, Session):
            events.announce(
                events.family_ended, announced.but(user=ended.username), audited=True
            ).done()
        return ended

    def family(self, session: Session, event: SessionEvent) -> None:
        """Ends the family of ``session`` (one round trip)."""
        round_trip = events.announce(
            events.family_ended, event.but(user=session.username, handle=session.handle)
        )
        with _made(round_trip):
            self.sessions.end_family(session, round_trip.riders)

    def by_handle(self, user_id: int, handle: str, event: SessionEvent) -> bool:
        """Ends the family of the member named by ``handle`` if it is user ``user_id``'s; says
        whether (nothing is announced as done otherwise). A retry of an ending whose
        confirmation came too late says so too, once the replicas confirm it (announced once,
        by the first try)."""
        round_trip = events.announce(events.family_ended, event.but(handle=handle))
        ended = _ended_or_not(
            round_trip, lambda: self.sessions.end_by_handle(user_id, handle, round_trip.riders)
        )
        return ended or self.sessions.ended_by_handle(user_id, handle)

    def timed_out(self, ended: TimedOut) -> None:
        """Announces a family that a check found past a timeout and ended (``family_ended``,
        ``idle_timeout`` or ``absolute_timeout``). Its riders (logout notifications) go in a
        round trip of their own, only when there are any: the check itself could not carry them
        (it learns of the timeout from its own answer)."""
        event = SessionEvent(
            ended.kind,
            user=ended.username,
            handle=ended.handle,
            reason=events.TIMEOUT_REASONS[ended.why],
        )
        round_trip = events.announce(events.family_ended, event)
        if round_trip.riders:
            change = Change(ended.handle, ended.username, ended.user_id, (ended.family_id,))
            send(self.sessions.client, participants=round_trip.riders, change=change)
        round_trip.done()

    def capped_entry(self, event: SessionEvent) -> StreamEntry | None:
        """The audit entry of the member that the extension ``event`` may end to make room in
        its family, for the extension's script to write (SessionStore.extend), saving
        :meth:`capped_member` a round trip; ``None`` where a script may not
        (SessionStore.one_step_endings)."""
        if not self.sessions.one_step_endings:
            return None
        return self._scripted_entry(_capped(event))

    def _scripted_entry(self, ending: SessionEvent) -> StreamEntry | None:
        """The audit entry of ``ending`` (if the trail writes one), as a script writes it."""
        entry = ending_entry(ending)
        return self.trail.entry(entry) if entry is not None else None

    def capped_member(self, handle: str, event: SessionEvent, audited: bool = False) -> None:
        """Announces that the session ``handle`` ended alone, to make room in its family
        (``session_ended``, reason ``session_cap``), once the extension that needed the room
        made (and confirmed) that ending; ``audited``: the extension wrote its audit entry
        (:meth:`capped_entry`). What receivers ride goes in a round trip of its own."""
        round_trip = events.announce(events.session_ended, _capped(event, handle), audited)
        if round_trip.riders:
            send(self.sessions.client, participants=round_trip.riders)
        round_trip.done()

    def claimed(self, user_id: int, claim: ExcessClaim, event: SessionEvent) -> int:
        """Ends the families of the user that a login's ``claim`` took to stay within
        MAX_FAMILIES_PER_USER (announced once, ``round_trip.count`` of them still live); not
        confirmed, it is that login that is not."""
        round_trip = events.announce(events.family_ended, event)
        with _made(round_trip):
            round_trip.count = self.sessions.end_claimed(user_id, claim, round_trip.riders)
        return round_trip.count

    def within_cap(self, user_id: int, most: int, event: SessionEvent) -> CappedInScript | None:
        """The user's oldest families beyond ``most`` (MAX_FAMILIES_PER_USER), ended by the script
        that opens a login's family, which picks them itself (so logins of one user at the same
        moment never end the same one and then one more), announced once made as ``event``;
        ``None`` unless :meth:`one_step`: then a login reads its user's families and ends the
        oldest :meth:`riding`, and ends what it still leaves beyond the cap :meth:`claimed`."""
        if not self.one_step():
            return None
        cap = self.sessions.family_cap(user_id, most, self._scripted_entry(event))
        return CappedInScript(cap, event)

    def riding(self, user_id: int, families: Sequence[str], event: SessionEvent) -> RidingEnding:
        """Announces the end of ``families`` of the user, to be sent in the round trip of another
        change (:meth:`RidingEnding.participant` rides in it; that change confirms the families
        too). The change's maker calls :meth:`RidingEnding.made` once that round trip made it."""
        round_trip = events.announce(events.family_ended, event)
        return RidingEnding(self.sessions.ending(user_id, families, round_trip.riders), round_trip)

    def all_of_user(
        self, user_id: int, event: SessionEvent, keep_family: str | None = None
    ) -> int:
        """Ends every family of the user but ``keep_family``; answers how many ended (announced
        once, with that count in ``round_trip.count``)."""
        round_trip = events.announce(events.family_ended, event)
        with _made(round_trip):
            round_trip.count = self.sessions.end_all_for_user(
                user_id, keep_family, round_trip.riders, Change(event.handle, event.user)
            )
        return round_trip.count


def _capped(extension: SessionEvent, handle: str = "") -> SessionEvent:
    """The ``session_ended`` event of the member ``handle`` that ``extension`` ended to make
    room in its family."""
    return extension.but(handle=handle, reason="session_cap", detail="")


class RidingEnding:
    """An ending announced, on its way in the round trip of another change (Endings.riding)."""

    def __init__(self, participant: FamilyEnding, round_trip: RoundTrip) -> None:
        self.participant = participant
        self.round_trip = round_trip

    def made(self) -> None:
        """The round trip was sent and made the ending (confirmed by the replicas or not): its
        announcement is done, counting the families that were still live."""
        self.round_trip.count = self.participant.count
        self.round_trip.done()


class CappedInScript:
    """The families that the script opening a login's family ends to keep its user within the
    cap (Endings.within_cap)."""

    def __init__(self, cap: FamilyCap, event: SessionEvent) -> None:
        #: What the open script is given (SessionStore.open_from_challenge's ``cap``).
        self.cap = cap
        self.event = event

    def made(self) -> None:
        """The script ran: announces the ending of the families it ended, if any, counting them."""
        if self.cap.ended:
            round_trip = events.announce(events.family_ended, self.event, audited=True)
            round_trip.count = self.cap.ended
            round_trip.done()


def _ended_or_not(round_trip: RoundTrip, end: Callable[[], bool]) -> bool:
    """Runs ``end``; the round trip is done when it ended something (confirmed or not)."""
    try:
        ended = end()
    except NotConfirmed:
        round_trip.done()
        raise
    if ended:
        round_trip.done()
    return ended

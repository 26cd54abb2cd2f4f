"""Ending session families, announced: every ending sends ``family_ended`` (webservice.events),
so the audit trail writes it in the same round trip and metrics and the host hear of it."""

from __future__ import annotations

from webservice import events
from webservice.events import SessionEvent
from webservice.store.round_trip import Change, send
from webservice.store.sessions import Session, SessionStore


class Endings:
    def __init__(self, sessions: SessionStore) -> None:
        self.sessions = sessions

    def family(self, session: Session, event: SessionEvent) -> None:
        """Ends the family of ``session`` (one round trip)."""
        round_trip = events.announce(
            events.family_ended, event.but(user=session.username, handle=session.handle)
        )
        self.sessions.end_family(session, round_trip.riders)
        round_trip.done()

    def by_handle(self, user_id: int, handle: str, event: SessionEvent) -> bool:
        """Ends the family of the member named by ``handle`` if it is user ``user_id``'s; says
        whether (nothing is announced as done otherwise)."""
        round_trip = events.announce(events.family_ended, event.but(handle=handle))
        if not self.sessions.end_by_handle(user_id, handle, round_trip.riders):
            return False
        round_trip.done()
        return True

    def capped_member(self, handle: str, event: SessionEvent) -> None:
        """Announces that the session ``handle`` ended alone, to make room in its family
        (``session_ended``, reason ``session_cap``); its own round trip, rare."""
        ended = event.but(handle=handle, reason="session_cap", detail="")
        round_trip = events.announce(events.session_ended, ended)
        send(self.sessions.client, participants=round_trip.riders)
        round_trip.done()

    def oldest_of_user(self, user_id: int, count: int, event: SessionEvent) -> int:
        """Ends the ``count`` oldest families of the user (announced once, ``round_trip.count``
        of them)."""
        round_trip = events.announce(events.family_ended, event)
        round_trip.count = self.sessions.end_oldest_of_user(user_id, count, round_trip.riders)
        round_trip.done()
        return round_trip.count

    def all_of_user(
        self, user_id: int, event: SessionEvent, keep_family: str | None = None
    ) -> int:
        """Ends every family of the user but ``keep_family``; answers how many ended (announced
        once, with that count in ``round_trip.count``)."""
        round_trip = events.announce(events.family_ended, event)
        round_trip.count = self.sessions.end_all_for_user(
            user_id, keep_family, round_trip.riders, Change(event.handle, event.user)
        )
        round_trip.done()
        return round_trip.count

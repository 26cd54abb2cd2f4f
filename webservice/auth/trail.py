"""The audit trail listens to the session events (webservice.events) and writes one entry per
event in the round trip of the change it records (store/audit.py has the fields)."""

from __future__ import annotations

from typing import Any

from flask import Flask

from webservice import events
from webservice.auth.endings import TIMEOUT_REASONS
from webservice.events import RoundTrip, SessionEvent
from webservice.store.audit import AuditEvent, AuditTrail

#: Families that timed out are not in the trail (store/audit.py), as before they were announced.
_TIMEOUTS = frozenset(TIMEOUT_REASONS.values())


def record_events(app: Flask, trail: AuditTrail) -> None:
    """Writes the events of ``app`` to ``trail``."""

    def entry(name: str, event: SessionEvent, round_trip: RoundTrip, reason: str = "") -> None:
        detail = "limit reached" if event.reaches_limit else event.detail
        round_trip.ride(
            trail.pending(
                AuditEvent(
                    name,
                    event.via,
                    user=event.user,
                    handle=event.handle,
                    address=event.address,
                    agent=event.agent,
                    reason=reason,
                    detail=detail,
                )
            )
        )

    def login(sender: Any, event: SessionEvent, round_trip: RoundTrip, **extra: Any) -> None:
        entry("login", event, round_trip)

    def failed(sender: Any, event: SessionEvent, round_trip: RoundTrip, **extra: Any) -> None:
        # Refusals while a limit holds are not written: a flood would wash older entries out.
        if not event.limited:
            entry("login_failed", event, round_trip, event.reason)

    def extended(sender: Any, event: SessionEvent, round_trip: RoundTrip, **extra: Any) -> None:
        entry("extend", event, round_trip)

    def ended(sender: Any, event: SessionEvent, round_trip: RoundTrip, **extra: Any) -> None:
        if event.reason in _TIMEOUTS:
            return
        if event.reason in events.LOGOUT_REASONS:
            entry("logout", event, round_trip)
        else:
            entry("end", event, round_trip, event.reason)

    events.connect(
        app,
        {
            events.login_succeeded: login,
            events.login_failed: failed,
            events.session_extended: extended,
            events.family_ended: ended,
            events.session_ended: ended,
        },
    )

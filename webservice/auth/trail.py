"""The audit trail listens to the session events (webservice.events) and writes one entry per
event in the round trip of the change it records (store/audit.py has the fields)."""

from __future__ import annotations

from typing import Any

from flask import Flask

from webservice import events
from webservice.events import RoundTrip, SessionEvent
from webservice.store.audit import AuditEvent, AuditTrail

#: Families that timed out are not in the trail (store/audit.py), as before they were announced.
_TIMEOUTS = frozenset(events.TIMEOUT_REASONS.values())


def _audit_event(name: str, event: SessionEvent, reason: str = "") -> AuditEvent:
    """The entry ``name`` that records ``event``."""
    return AuditEvent(
        name,
        event.via,
        user=event.user,
        handle=event.handle,
        address=event.address,
        agent=event.agent,
        reason=reason,
        detail="limit reached" if event.reaches_limit else event.detail,
    )


def ending_entry(event: SessionEvent) -> AuditEvent | None:
    """The entry that records the ending ``event`` (``family_ended``, ``session_ended``), if
    the trail writes one."""
    if event.reason in _TIMEOUTS:
        return None
    if event.reason in events.LOGOUT_REASONS:
        return _audit_event("logout", event)
    return _audit_event("end", event, event.reason)


def record_events(app: Flask, trail: AuditTrail) -> None:
    """Writes the events of ``app`` to ``trail``."""

    def write(entry: AuditEvent | None, round_trip: RoundTrip) -> None:
        if entry is not None and not round_trip.audited:
            round_trip.ride(trail.pending(entry))

    def login(sender: Any, event: SessionEvent, round_trip: RoundTrip, **extra: Any) -> None:
        write(_audit_event("login", event), round_trip)

    def failed(sender: Any, event: SessionEvent, round_trip: RoundTrip, **extra: Any) -> None:
        # Refusals while a limit holds are not written: a flood would wash older entries out.
        if not event.limited:
            write(_audit_event("login_failed", event, event.reason), round_trip)

    def extended(sender: Any, event: SessionEvent, round_trip: RoundTrip, **extra: Any) -> None:
        write(_audit_event("extend", event), round_trip)

    def ended(sender: Any, event: SessionEvent, round_trip: RoundTrip, **extra: Any) -> None:
        # Most endings wrote their own entry (a logout in one step, a login that ended its
        # user's oldest family beyond the cap): the one they need not is not even built.
        if not round_trip.audited:
            write(ending_entry(event), round_trip)

    events.connect(
        app,
        {
            events.login_succeeded: login,
            events.login_failed: failed,
            events.session_extended: extended,
            events.family_ended: ended,
            events.session_ended: ended,
        },
        after_the_fact=True,
    )

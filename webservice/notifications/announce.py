"""Writes the logout notifications of every family that ends: it listens to ``family_ended``
(webservice.events) and adds the outbox entries to the round trip that ends the family, as the
audit trail adds its entry (auth/trail.py). Without receivers it listens to nothing, and no
round trip changes."""

from __future__ import annotations

from typing import Any

from flask import Flask

from webservice import events
from webservice.events import RoundTrip, SessionEvent
from webservice.store.outbox import LogoutOutbox, Receiver


def notify_on_endings(app: Flask, outbox: LogoutOutbox, receivers: tuple[Receiver, ...]) -> None:
    if not receivers:
        return

    def ended(sender: Any, event: SessionEvent, round_trip: RoundTrip, **extra: Any) -> None:
        round_trip.ride(outbox.pending(receivers, event.reason))

    events.connect(app, {events.family_ended: ended})

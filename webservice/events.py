"""What happens to sessions, as signals (blinker, as Flask and Flask-Login use).

=====================  ===========================================================================
signal                 sent when
=====================  ===========================================================================
``login_succeeded``    a login started a family: API ``login`` (via ``api``) or a web login
                       (``web``: the standalone UI's form, the host's ``login_user`` or
                       ``WSGate.login_web``)
``login_failed``       a login was refused; ``reason`` says why (``wrong_key``, ``unknown_user``,
                       ``no_live_token``, ``token_used``, ``wrong_password``, ...), ``limited`` that
                       a failure limit refused it before any check
``session_extended``   ``extendsession`` gave a web login a new, linked API session
``family_ended``       a family ended with every session in it; ``reason``: ``logout`` (API),
                       ``web_logout``, ``endsession`` (by handle), ``endallsessions``, ``revoke``,
                       ``revoke_user``, ``user_disabled``, ``web_relogin`` (replaced by a new
                       login in the same browser), ``family_cap`` (the user had
                       MAX_FAMILIES_PER_USER live logins: the oldest ended), ``idle_timeout`` /
                       ``absolute_timeout`` (a request found the family past a timeout; sent
                       after the check that ended it, so its riders go in a round trip of
                       their own)
``session_ended``      one session ended alone, its family going on: ``session_cap`` (the family
                       had MAX_SESSIONS_PER_FAMILY members: the oldest ended for a new one)
=====================  ===========================================================================

Every signal is sent with the Flask app as sender and two keyword arguments: ``event``, a
:class:`SessionEvent`, and ``round_trip``, a :class:`RoundTrip`. A receiver is called as the
change is being made, before its round trip to Redis is sent: a receiver that writes to Redis
(the audit trail) adds its commands to that round trip with ``round_trip.ride(participant)`` and
costs no round trip of its own; one that must act only once the change is made (metrics, a host
clearing its caches) passes a callback to ``round_trip.on_done``::

    from webservice import events

    @events.family_ended.connect_via(app)
    def forget(sender, event, round_trip, **extra):
        round_trip.on_done(lambda: cache.delete(f"user:{event.user}"))

Three endings are announced once made instead, and on a single Redis their script writes their
audit entry itself (the round trip says ``audited``, and the trail writes none): the member that
an extension ends to make room in its family (``session_ended``: only the script decides which),
a logout of the caller's own session (auth/endings.py, ``Endings.own_family``), which checks
the session and ends its family in one script, because only that script learns whose family it
is, and the oldest families that a login ends to keep its user within MAX_FAMILIES_PER_USER
(``Endings.within_cap``: the script that opens the new family picks them, so that logins of one
user at the same moment never pick the same one). The logout and the login's ending are made so
only while every receiver of ``family_ended`` for the app was connected with
``after_the_fact=True`` (the gateway's own: the audit trail and the metrics); a host's receiver
makes them announce first, as above.

The few changes that can still fail once their round trip is sent (a login whose token was used a
moment earlier, an extension whose web login has just ended) are taken back: riders hear of it
through their ``cancelled`` method, and ``on_done`` callbacks are not called. An ending that the
replicas did not confirm in time (REDIS_WAIT_REPLICAS) is made all the same, in force on the
master: its ``on_done`` callbacks are called, and then its caller is told to retry (a retry ends
nothing more and announces nothing).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Protocol

from blinker import Namespace
from flask import current_app

from webservice.store.round_trip import Participant
from webservice.store.session_values import ClientInfo

_signals = Namespace()
login_succeeded = _signals.signal("wsgate.login-succeeded")
login_failed = _signals.signal("wsgate.login-failed")
session_extended = _signals.signal("wsgate.session-extended")
family_ended = _signals.signal("wsgate.family-ended")
session_ended = _signals.signal("wsgate.session-ended")

#: The ``family_ended`` reasons that are the user's own logout (API or REST ``logout``, a web
#: logout), as opposed to an ending by handle, a revocation, a cap or a timeout.
LOGOUT_REASONS = frozenset({"logout", "web_logout"})
#: The ``family_ended`` reasons of a family that a check found past a timeout, by TimedOut.why.
TIMEOUT_REASONS = {"expired": "absolute_timeout", "idle": "idle_timeout"}


@dataclass(frozen=True)
class SessionEvent:
    """What happened, to whom, from where. Never holds a secret."""

    #: ``api`` (webservice.php), ``web`` (a web login or logout), ``rest`` (the /v1 session API)
    #: or ``cli`` (the flask commands).
    via: str
    #: The username (for a failed login, the name that was tried).
    user: str = ""
    #: The public handle of the session concerned: started, extended to, logged out of; for an
    #: ending by handle, the one named; for an end-all, the one that asked (else empty).
    handle: str = ""
    address: str = ""
    agent: str = ""
    reason: str = ""
    #: ``by <handle>`` when one session ended another, ``others only``, ``limit reached``.
    detail: str = ""
    #: ``login_failed``: refused by a failure limit before any check.
    limited: bool = False
    #: ``login_failed``: this failure uses up a failure limit.
    reaches_limit: bool = False

    @classmethod
    def of_client(cls, via: str, client: ClientInfo, **values: Any) -> SessionEvent:
        return cls(via, address=client.address, agent=client.user_agent, **values)

    def but(self, **changes: Any) -> SessionEvent:
        """A copy with ``changes``: what ``dataclasses.replace`` makes, without its pass through
        ``__init__`` (a few µs, twice in every logout)."""
        if not changes.keys() <= _EVENT_FIELDS:
            raise TypeError(f"SessionEvent has no field {sorted(changes.keys() - _EVENT_FIELDS)}")
        changed = object.__new__(SessionEvent)
        changed.__dict__.update(self.__dict__, **changes)
        return changed


_EVENT_FIELDS = frozenset(field.name for field in fields(SessionEvent))


class Rider(Participant, Protocol):
    """A participant of a change's round trip that is told when the change is taken back."""

    def cancelled(self) -> None: ...


class RoundTrip:
    """What the receivers of one event add to the round trip of its change."""

    def __init__(self, audited: bool = False) -> None:
        self.riders: list[Rider] = []
        #: The change, already made, wrote the audit entry of this event itself (a logout made in
        #: one step: see the module docstring); the audit trail writes none.
        self.audited = audited
        #: How many families the change ended (``family_ended`` of an end-all; else 1).
        self.count = 1
        self._on_done: list[Callable[[], None]] = []

    def ride(self, rider: Rider) -> None:
        """Sends ``rider``'s commands in the change's round trip."""
        self.riders.append(rider)

    def on_done(self, callback: Callable[[], None]) -> None:
        """Calls ``callback`` once the change is made (not if it fails or is taken back)."""
        self._on_done.append(callback)

    def done(self) -> None:
        for callback in self._on_done:
            callback()

    def cancel(self) -> None:
        for rider in self.riders:
            rider.cancelled()


#: The receivers connected with ``after_the_fact=True`` (see :func:`connect`).
_AFTER_THE_FACT: weakref.WeakSet[Callable[..., Any]] = weakref.WeakSet()


def connect(
    app: Any, receivers: Mapping[Any, Callable[..., Any]], after_the_fact: bool = False
) -> None:
    """Connects each receiver to its signal (ours or Flask-Login's) for ``app`` alone. Strongly:
    blinker keeps receivers weakly, and these are closures that nothing else holds.

    ``after_the_fact``: the receivers may hear of a change once it is made (they ride nothing in
    its round trip but, for the audit trail, an entry it leaves out when the round trip says
    ``audited``), which lets the changes that can only be announced afterwards be made in one
    step (:func:`hear_after_the_fact`)."""
    for signal, receiver in receivers.items():
        if after_the_fact:
            _AFTER_THE_FACT.add(receiver)  # first: connecting forgets hear_after_the_fact's answers
        signal.connect(receiver, sender=app, weak=False)


def hear_after_the_fact(signal: Any) -> bool:
    """Whether every receiver of ``signal`` for the current app may hear of a change once it is
    made (connected with ``after_the_fact=True``)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    answers = _HEAR_AFTER.setdefault(app, {})
    answer = answers.get(signal)
    if answer is None:
        answer = all(receiver in _AFTER_THE_FACT for receiver in signal.receivers_for(app))
        answers[signal] = answer
    return answer


#: :func:`hear_after_the_fact`'s answers, by app and signal, until a receiver of one of the
#: signals here is connected or disconnected (a logout asks each time: this saves it a few µs).
_HEAR_AFTER: weakref.WeakKeyDictionary[Any, dict[Any, bool]] = weakref.WeakKeyDictionary()


def _forget_answers(signal: Any, **extra: Any) -> None:
    _HEAR_AFTER.clear()


for _signal in (login_succeeded, login_failed, session_extended, family_ended, session_ended):
    _signal.receiver_connected.connect(_forget_answers)
    _signal.receiver_disconnected.connect(_forget_answers)


def announce(signal: Any, event: SessionEvent, audited: bool = False) -> RoundTrip:
    """Sends ``signal`` for ``event``; answers the round trip its receivers filled in.
    ``audited``: see :attr:`RoundTrip.audited`."""
    round_trip = RoundTrip(audited)
    signal.send(current_app._get_current_object(), event=event, round_trip=round_trip)  # type: ignore[attr-defined]
    return round_trip

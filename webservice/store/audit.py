"""The audit trail: logins, failed logins, extensions, logouts and ended sessions, in one capped
Redis stream (``P:audit``, see keys.py), read with ``flask --app wsgi audit tail``.

Every entry is a flat map of strings; its stream id gives the time (milliseconds by the Redis
server's clock, so all hosts agree). The fields, always all present (empty when they do not apply):

``event``
    ``login`` (a session was started), ``login_failed``, ``extend`` (extendsession gave a web login
    an API session), ``logout`` (the holder of a session ended it), ``end`` (sessions were ended
    from elsewhere: another session of the user, a new web login in the same browser, an
    operator).
``via``
    ``api`` (webservice.php), ``web`` (the web UI) or ``cli`` (the ``flask`` commands).
``user``
    The username. For a failed login, the name that was tried; left empty when it is not a valid
    username at all (such a "name" is often a password typed into the wrong field).
``handle``
    The public handle ``<family>:<member8>`` of the session concerned (tokens.handle_of): the one
    started, extended to or logged out of; for ``end``, the one named (``endsession``,
    ``revoke``), the web login replaced, or the one that asked (``endallsessions``); empty when
    an operator ended every session of a user. A handle names a session; it is never a
    credential.
``address``, ``agent``
    The client's address and User-Agent (cut to 200 characters); for ``cli``, no address and the
    operating-system user who ran the command.
``reason``
    ``login_failed``: ``invalid_username``, ``unknown_user``, ``no_live_token`` (no unused,
    unexpired challenge token), ``token_used`` (the proof was right but the token had just been
    used), ``no_access_key``, ``wrong_key``, ``no_password``, ``wrong_password``, ``inactive``.
    ``end``: ``endsession``, ``endallsessions`` (``via`` ``api``: the operations; ``web``: the
    sessions page's *End this one*, *End all* and *End all others*), ``web_relogin`` (a new web
    login in the same browser ended the previous one), ``revoke``, ``revoke_user``,
    ``user_disabled``. Empty otherwise. Reasons are the truth, also when HIDE_UNKNOWN_USERS makes the client's answer say
    less.
``detail``
    ``limit reached`` on the failed login that used up a failure limit (limits.py); ``by <handle>``
    when one session logged out or ended another; ``others only`` when ``endallsessions`` (the
    sessions page's *End all others*) left the session that asked alive.

No field ever holds a secret: session ids and their secrets, access keys, passwords, challenge
tokens and login proofs are not among the fields above.

Not in the trail: logins refused while a failure limit holds (the failure that reached the limit
is; writing every refusal would let a flood wash older entries out of the capped stream), and
sessions that time out (Redis expires them).

The trail hears of logins, extensions and endings through the signals of webservice.events
(auth/trail.py connects them), and writes each entry in the round trip that the change sends
anyway (:class:`PendingEntry`, a participant of that round trip), so a login keeps its two round
trips. Such an entry is written before the outcome of the change is known; the few changes that
can still fail then (a login whose token was used a moment earlier, an extension whose web login
just ended) take their entry back (:meth:`PendingEntry.cancelled`). On a single Redis, three
changes have their script write their entry instead (:meth:`AuditTrail.entry`), only if the
change is made: a logout of one's own session, which is one round trip then, the end of the
member an extension drops at its family's cap, and the end of the oldest families a login drops
at its user's cap (one entry for the login, however many it ended). The stream is capped at about
``AUDIT_MAX_ENTRIES`` (``XADD MAXLEN ~``: Redis trims it in whole blocks, cheaply).
"""

from __future__ import annotations

import getpass
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timezone
from typing import Any

from webservice.store.client import RedisClient
from webservice.store.family_lua import StreamEntry
from webservice.store.keys import RedisKeys, same_user
from webservice.store.round_trip import Change
from webservice.store.session_values import MAX_USER_AGENT, ClientInfo
from webservice.store.users import is_valid_username

#: Entries read per XREVRANGE while looking back for one user's entries.
_SCAN_BATCH = 500


@dataclass(frozen=True)
class AuditEvent:
    """What an entry says (the fields of the module docstring)."""

    event: str
    via: str
    user: str = ""
    handle: str = ""
    address: str = ""
    agent: str = ""
    reason: str = ""
    detail: str = ""

    @classmethod
    def of_client(cls, event: str, via: str, client: ClientInfo, **values: str) -> AuditEvent:
        return cls(event, via, address=client.address, agent=client.user_agent, **values)

    @classmethod
    def of_operator(cls, event: str, **values: str) -> AuditEvent:
        """An event caused by a ``flask`` command, naming the operating-system user."""
        try:
            who = getpass.getuser()
        except (KeyError, OSError):
            who = "unknown"
        return cls(event, "cli", agent=f"flask cli ({who})", **values)

    def as_fields(self) -> dict[str, str]:
        # Not dataclasses.asdict, which deep-copies every field: 5% of a logout's Python time.
        values = {name: getattr(self, name) for name in _EVENT_FIELDS}
        if not is_valid_username(self.user):
            values["user"] = ""
        values["agent"] = self.agent[:MAX_USER_AGENT]
        return values


_EVENT_FIELDS = tuple(field.name for field in fields(AuditEvent))


def rfc3339(epoch_ms: int) -> str:
    """``epoch_ms`` as RFC 3339 in UTC with milliseconds (``2026-12-05T07:58:46.414Z``): the
    audit trail's times, and the REST API's."""
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


@dataclass(frozen=True)
class AuditEntry:
    """One entry as read back."""

    id: str
    event: AuditEvent

    @property
    def time_ms(self) -> int:
        return int(self.id.partition("-")[0])

    @property
    def when(self) -> str:
        return rfc3339(self.time_ms)

    def as_dict(self) -> dict[str, str]:
        return {"id": self.id, "time": self.when, **asdict(self.event)}

    @classmethod
    def from_stream(cls, entry_id: str, values: Mapping[str, str]) -> AuditEntry:
        event = AuditEvent(
            **{"event": "", "via": "", **{k: v for k, v in values.items() if k in _EVENT_FIELDS}}
        )
        return cls(entry_id, event)


class AuditTrail:
    """Writes entries (in others' round trips or its own) and reads them back."""

    def __init__(self, client: RedisClient, keys: RedisKeys, *, max_entries: int) -> None:
        self.client = client
        self.key = keys.audit_log()
        self.max_entries = max(1, int(max_entries))

    # --- writing -------------------------------------------------------------------------------

    def queue(self, pipe: Any, event: AuditEvent) -> None:
        """Adds the entry to a pipeline (its reply is the entry's id)."""
        pipe.xadd(self.key, event.as_fields(), maxlen=self.max_entries, approximate=True)

    def record(self, event: AuditEvent) -> str:
        """Writes the entry in a round trip of its own; answers its id."""
        return self.client.xadd(
            self.key, event.as_fields(), maxlen=self.max_entries, approximate=True
        )

    def entry(self, event: AuditEvent) -> StreamEntry:
        """The entry as a script writes it with its change, its user (and for an extension's
        capped member, its handle) the one the script finds (SessionStore.end_own and
        SessionStore.extend)."""
        return StreamEntry(self.key, self.max_entries, event.as_fields())

    def pending(self, event: AuditEvent) -> PendingEntry:
        """The entry as a participant of a change's round trip (round_trip.Participant)."""
        return PendingEntry(self, event)

    # --- reading -------------------------------------------------------------------------------

    def tail(self, count: int, user: str | None = None) -> tuple[list[AuditEntry], str]:
        """The last ``count`` entries (of ``user`` only, when given), oldest first, and the id of
        the newest entry in the stream ("0-0" when empty), to :meth:`follow` from."""
        found: list[AuditEntry] = []
        newest = "0-0"
        upper = "+"
        while len(found) < count:
            batch = self.client.xrevrange(self.key, upper, "-", count=_SCAN_BATCH)
            if not batch:
                break
            if newest == "0-0":
                newest = batch[0][0]
            for entry_id, values in batch:
                entry = AuditEntry.from_stream(entry_id, values)
                if user is None or same_user(entry.event.user) == same_user(user):
                    found.append(entry)
                    if len(found) == count:
                        break
            if len(batch) < _SCAN_BATCH:
                break
            upper = "(" + batch[-1][0]
        found.reverse()
        return found, newest

    def follow(
        self, after: str, user: str | None = None, block_ms: int = 1000
    ) -> Iterator[AuditEntry]:
        """The entries written after id ``after`` (of ``user`` only, when given), as they come;
        never ends. Waits at most ``block_ms`` per request, so it stays within the socket timeout."""
        last = after
        while True:
            answer = self.client.xread({self.key: last}, count=100, block=block_ms)
            for _stream, entries in answer or []:
                for entry_id, values in entries:
                    last = entry_id
                    entry = AuditEntry.from_stream(entry_id, values)
                    if user is None or same_user(entry.event.user) == same_user(user):
                        yield entry


class PendingEntry:
    """An audit entry sent in the round trip of a session change (round_trip.Participant).

    The change fills in the handle (and username) of the session it starts, extends or ends. The
    entry is queued once: if the round trip is sent again, it is not queued again.
    """

    def __init__(self, trail: AuditTrail, event: AuditEvent) -> None:
        self.trail = trail
        self.event = event
        self.entry_id: str | None = None
        self._queued = False
        self._in_last_send = False

    def queue(self, pipe: Any, change: Change) -> None:
        self._in_last_send = not self._queued
        if self._queued:
            return
        if change.handle or change.username:
            event = self.event
            self.event = replace(
                event, handle=change.handle or event.handle, user=change.username or event.user
            )
        self.trail.queue(pipe, self.event)
        self._queued = True

    def sent(self, replies: list[Any]) -> None:
        if self._in_last_send and replies:
            self.entry_id = replies[-1]

    def cancelled(self) -> None:
        """Takes the entry back (the change it announced did not happen): one round trip.
        Does nothing for an entry that was never written."""
        if self.entry_id is not None:
            self.trail.client.xdel(self.trail.key, self.entry_id)
            self.entry_id = None
        self._queued = False

"""The values the session store answers with: who is calling (ClientInfo), a live session
(Session), a member as a listing shows it (SessionView), a family a check found timed out
(TimedOut), and what an extension did (Extension).
"""

from __future__ import annotations

from dataclasses import dataclass

from webservice.store.tokens import handle_of

#: The largest user agent kept with a session; the rest is cut (it is for display only).
MAX_USER_AGENT = 200
#: Separates the parts of a member's packed client info (``i:<m>`` of a family's record).
FIELD_SEPARATOR = "\x1f"


@dataclass(frozen=True)
class ClientInfo:
    """Who is calling: shown in session listings and the audit trail."""

    address: str
    user_agent: str

    def packed(self, kind: str) -> str:
        address = self.address.replace(FIELD_SEPARATOR, " ")
        agent = self.user_agent[:MAX_USER_AGENT].replace(FIELD_SEPARATOR, " ")
        return FIELD_SEPARATOR.join((kind, address, agent))


@dataclass(frozen=True)
class Session:
    """A live, validated session member."""

    user_id: int
    username: str
    family_id: str
    member: str

    @property
    def handle(self) -> str:
        return handle_of(self.family_id, self.member)


@dataclass(frozen=True)
class SessionView:
    """One live member of a user's families, as the sessions page and ``listsessions`` show it."""

    handle: str
    family_id: str
    kind: str
    #: Whether the member shares its family with others (ending one ends all of them).
    linked: bool
    created: int
    last_used: int
    #: When it ends unless used again (ms): its idle timeout, its family's absolute expiry, and
    #: for a linked member, its family's root's idle timeout, whichever comes first.
    expires: int
    address: str
    user_agent: str

    def as_dict(self) -> dict[str, object]:
        return {
            "handle": self.handle,
            "kind": self.kind,
            "linked": self.linked,
            "created": self.created // 1000,
            "lastUsed": self.last_used // 1000,
            "address": self.address,
            "userAgent": self.user_agent,
        }


@dataclass(frozen=True)
class TimedOut:
    """A family that a check found past its absolute timeout ('expired') or its root past its
    idle timeout ('idle'), and ended."""

    family_id: str
    #: The public handle and the kind ('api' or 'web') of the member whose check found it.
    handle: str
    kind: str
    user_id: int
    username: str
    why: str


@dataclass(frozen=True)
class Extension:
    """What ``SessionStore.extend`` did: the session added, and the handle of the member that
    ended to make room for it, if the family was at its cap."""

    session: Session
    ended: str | None

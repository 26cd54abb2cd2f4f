"""One round trip to Redis that carries a change and the commands that ride along with it.

A change (a family started, extended or ended; a failed login counted) is sent as one pipeline.
Others add their commands to that same pipeline instead of paying a round trip of their own: an
audit entry, a failure counter's reset, an outbox entry. Each of them is a :class:`Participant`;
:func:`send` queues the change's own commands, then each participant's, and hands every one of
them exactly its own replies. Nobody counts reply offsets. A change that replicas must confirm
before it is acknowledged (REDIS_WAIT_REPLICAS) ends its pipeline with the confirmation
(confirmation.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from redis.exceptions import NoScriptError

from webservice.store.client import RedisClient
from webservice.store.confirmation import Confirmation, NotConfirmed, cluster_of
from webservice.store.direct import line_of
from webservice.store.scripts import LuaScript


@dataclass(frozen=True)
class Change:
    """What the store tells participants about the change they ride with."""

    #: The public handle of the session started, extended to or ended, when there is one.
    handle: str = ""
    #: The username concerned, when the store knows it.
    username: str = ""
    #: The numeric id of the user concerned, when the store knows it.
    user_id: int | None = None
    #: The families a change ends (their ids), as far as the store knows them when it queues the
    #: change: a family that ended on its own a moment earlier may be among them.
    ended_families: tuple[str, ...] = ()


class Participant(Protocol):
    """Commands that ride in the round trip of a change.

    ``queue`` may be called again for the same change: a pipeline that met a script Redis had
    forgotten is sent again (see :func:`send`) after the commands of the first send ran, so a
    participant must not queue a command that cannot be repeated (an XADD) a second time.
    ``sent`` gets the replies to the commands it queued in the send that went through.
    A participant that queues Lua scripts names them in a ``scripts`` attribute, so that the
    round trip can load them when Redis has forgotten them.
    """

    def queue(self, pipe: Any, change: Change) -> None: ...

    def sent(self, replies: list[Any]) -> None: ...


def send(
    client: RedisClient,
    own: Callable[[Any], None] | None = None,
    participants: Sequence[Participant] = (),
    change: Change = Change(),
    scripts: Sequence[LuaScript] = (),
    confirm: Confirmation | None = None,
) -> list[Any]:
    """Sends the commands ``own`` queues and those of ``participants`` in one round trip (not a
    transaction); answers the replies to ``own``'s commands. Without ``own``, the participants
    ride alone (a change that needs no command of its own, such as a refusal to audit).

    When Redis had forgotten one of ``scripts``, they are loaded and the whole pipeline is sent
    again, so every command in it must be safe to repeat.

    With ``confirm``, the replicas must confirm the change: in the same pipeline on one Redis,
    right after it on each master concerned of a cluster. Once every participant has its replies,
    raises NotConfirmed when they did not (the change stays made).
    """
    cluster = cluster_of(client) if confirm is not None else None
    confirm_here = confirm if cluster is None else None

    def attempt() -> tuple[list[Any], list[tuple[Participant, int, int]], int]:
        pipe = client.pipeline(transaction=False)
        if own is not None:
            own(pipe)
        own_count = len(pipe)
        spans = []
        for participant in participants:
            start = len(pipe)
            participant.queue(pipe, change)
            spans.append((participant, start, len(pipe)))
        if confirm_here is not None:
            confirm_here.queue(pipe)
        return (line_of(client).execute(pipe) if len(pipe) else []), spans, own_count

    try:
        replies, spans, own_count = attempt()
    except NoScriptError:
        for script in [*scripts, *(s for p in participants for s in getattr(p, "scripts", ()))]:
            script.load(client)
        replies, spans, own_count = attempt()
    for participant, start, end in spans:
        participant.sent(replies[start:end])
    try:
        if confirm_here is not None:
            confirm_here.check(replies)
        elif confirm is not None and cluster is not None:
            confirm.on_cluster(cluster)
    except NotConfirmed as unconfirmed:
        unconfirmed.replies = replies[:own_count]
        raise
    return replies[:own_count]

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

import redis.client
from redis.exceptions import NoScriptError, ResponseError

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

    ``queue`` is called once per change; ``sent`` gets the replies to the commands it queued.
    A participant that queues Lua scripts names them in a ``scripts`` attribute, so that the
    round trip can load them when Redis has forgotten them (and send again the commands that met
    a forgotten one: see :func:`send`).
    """

    def queue(self, pipe: Any, change: Change) -> None: ...

    def sent(self, replies: list[Any]) -> None: ...


def _queued(pipe: Any) -> list[Any]:
    """The commands queued in ``pipe``, one Redis's pipeline or a cluster's (redis-py keeps them
    in different places and shapes: see :func:`_args_and_options`)."""
    target = getattr(pipe, "_target", pipe)  # a cluster pipeline behind client._ClusterErrors
    if isinstance(target, redis.client.Pipeline):
        return target.command_stack
    return target._execution_strategy.command_queue


def _args_and_options(command: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """A queued command as (arguments, options): a tuple in one Redis's pipeline, an object in a
    cluster's."""
    if hasattr(command, "args"):
        return command.args, command.options
    return command


#: Where one participant's commands sit in a pipeline: (participant, first, past the last).
Span = tuple[Participant, int, int]


def queue_each(pipe: Any, participants: Sequence[Participant], change: Change) -> list[Span]:
    """Queues the commands of each participant, told of ``change``; answers where each one's
    commands (and so its replies) sit in ``pipe``."""
    spans = []
    for participant in participants:
        start = len(pipe)
        participant.queue(pipe, change)
        spans.append((participant, start, len(pipe)))
    return spans


def hand_out(spans: Sequence[Span], replies: list[Any], offset: int = 0) -> None:
    """Gives each participant of ``spans`` its own replies; ``replies[0]`` answers the command
    at position ``offset`` of the pipeline."""
    for participant, start, end in spans:
        participant.sent(replies[start - offset : end - offset])


def scripts_of(participants: Sequence[Participant]) -> tuple[LuaScript, ...]:
    """The Lua scripts the participants say they queue (their ``scripts`` attribute)."""
    return tuple(s for p in participants for s in getattr(p, "scripts", ()))


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

    When Redis had forgotten a script (``scripts``, or one a participant names), the scripts are
    loaded and exactly the commands that met a forgotten one are sent again (they did not run);
    every other command ran once, so nothing in the pipeline needs to be safe to repeat (another
    worker may load a script between two commands of this pipeline: then only some of its
    scripts ran).

    With ``confirm``, the replicas must confirm the change: in the same pipeline on one Redis,
    right after it on each master concerned of a cluster. Once every participant has its replies,
    raises NotConfirmed when they did not (the change stays made).
    """
    cluster = cluster_of(client) if confirm is not None else None
    confirm_here = confirm if cluster is None else None
    line = line_of(client)

    pipe = client.pipeline(transaction=False)
    if own is not None:
        own(pipe)
    own_count = len(pipe)
    spans = queue_each(pipe, participants, change)
    if confirm_here is not None:
        confirm_here.queue(pipe)
    commands = list(_queued(pipe))  # a copy: executing the pipeline empties it
    replies = line.execute(pipe, raise_on_error=False) if commands else []
    missed = [index for index, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
    if missed:
        for script in [*scripts, *scripts_of(participants)]:
            script.load(client)
        again = client.pipeline(transaction=False)
        for index in missed:
            args, options = _args_and_options(commands[index])
            again.execute_command(*args, **options)
        if confirm_here is not None:
            confirm_here.queue(again)  # a confirmation that covers them too
        answers = line.execute(again, raise_on_error=False)
        for index, reply in zip(missed, answers):
            replies[index] = reply
        if confirm_here is not None:
            replies[-Confirmation.QUEUED :] = answers[-Confirmation.QUEUED :]
    failed = next((reply for reply in replies if isinstance(reply, ResponseError)), None)
    if failed is not None:
        raise failed
    hand_out(spans, replies)
    try:
        if confirm_here is not None:
            confirm_here.check(replies)
        elif confirm is not None and cluster is not None:
            confirm.on_cluster(cluster)
    except NotConfirmed as unconfirmed:
        unconfirmed.replies = replies[:own_count]
        raise
    return replies[:own_count]

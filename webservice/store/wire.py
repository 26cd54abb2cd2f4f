"""Commands packed and replies read on a redis-py connection the short way: hiredis directly.

Why it exists. For each command of a pipeline, redis-py 8 encodes every argument through its
``Encoder`` (a chain of ``isinstance`` checks per argument), looks up its HIMPORT field sets,
builds the host's name for a possible error message before every reply, and goes through two
layers of reply parsing. hiredis packs a whole command in C, and its reader hands back each
reply, error replies as values. Measured in one process against a local Redis: a pipeline of a
login's 12 commands costs about 128 µs of CPU through redis-py's pipeline code and about 85 µs
here; a login pair sends 27 commands, a logout 4.

What it keeps of redis-py: the connection, its socket and its hiredis reader (so a connection
can go from one path to the other between commands), its error classes (``NOSCRIPT`` is still a
:class:`~redis.exceptions.NoScriptError`), and the pipeline's response callbacks, applied as
redis-py applies them (an ``HGETALL`` still answers a dict). A connection it cannot serve the
short way (see :func:`short_way`) is served by redis-py's own code, and so is a command hiredis
cannot pack (``None``, ``True``: redis-py raises its ``DataError`` for them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.client import EMPTY_RESPONSE, NEVER_DECODE
from redis.connection import AbstractConnection
from redis.exceptions import ConnectionError, ResponseError

try:
    from hiredis import pack_command
    from redis._parsers import _HiredisParser
except ImportError:  # pragma: no cover - hiredis is a dependency (pyproject.toml)
    pack_command = None
    _HiredisParser = None

#: What a command of a pipeline is in redis-py: its arguments and its callback's options.
Command = tuple[tuple[Any, ...], dict[str, Any]]
#: redis-py's own write of a packed command, which :func:`_write` does the short way.
_REDIS_PY_WRITE = AbstractConnection.send_packed_command


def short_way(connection: Any) -> bool:
    """Whether ``connection`` can be served here: connected (its handshake settled the protocol),
    a socket read by redis-py's own reply reading (not a stand-in such as fakeredis's) through
    hiredis, the protocol its client's callbacks were chosen for (not a RESP3 client that fell
    back to RESP2), UTF-8 strict."""
    encoder = connection.encoder
    return (
        _HiredisParser is not None
        and connection._sock is not None
        and type(connection).read_response is AbstractConnection.read_response
        and isinstance(connection._parser, _HiredisParser)
        and not connection._resp2_fallback
        and encoder.encoding == "utf-8"
        and encoder.encoding_errors == "strict"
    )


def plain(commands: Sequence[Command]) -> bool:
    """Whether every command of a pipeline reads its reply decoded as usual (none asks redis-py
    for its raw bytes)."""
    return not any(NEVER_DECODE in options for _, options in commands)


def send(connection: Any, commands: Sequence[tuple[Any, ...]]) -> None:
    """Sends ``commands`` (argument tuples) in one write."""
    try:
        # One buffer, so one write: Redis reads the pipeline whole (not a command per read).
        packed = b"".join([pack_command(_split_name(args)) for args in commands])
    except TypeError:
        # An argument hiredis cannot pack: redis-py's encoder raises what it raises for it.
        connection.send_packed_command(connection.pack_commands(commands))
        return
    _write(connection, packed)


def _write(connection: Any, data: bytes) -> None:
    """Writes ``data`` as redis-py's ``send_packed_command`` does, its health check first, but
    with one ``send``: gevent's ``sendall`` asks the socket for its buffer size (a system call)
    and reads the clock before it sends, about 3 µs of a request's CPU, and a command of a few
    hundred bytes goes whole in one ``send``. What a send leaves (a full buffer), or fails
    with, redis-py's own code sends again, and raises and disconnects as it does. A connection
    whose class writes its own way (one that counts or traces its writes) is left to it."""
    if type(connection).send_packed_command is not _REDIS_PY_WRITE:
        connection.send_packed_command([data])
        return
    connection.check_health()
    try:
        sent = connection._sock.send(data)
    except OSError:
        sent = 0
    if sent < len(data):
        connection.send_packed_command([data[sent:]], check_health=False)


def read_reply(connection: Any) -> Any:
    """The next reply on ``connection``, raw; an error reply is answered (not raised) as a
    :class:`~redis.exceptions.ResponseError`. A socket error is a ConnectionError."""
    try:
        return connection._parser.read_response()
    except OSError as error:
        raise ConnectionError(f"Error while reading from Redis: {error}") from error


def call(connection: Any, args: tuple[Any, ...]) -> Any:
    """Sends one command and answers its raw reply; raises its error reply."""
    send(connection, (args,))
    reply = read_reply(connection)
    if isinstance(reply, ResponseError):
        raise reply
    return reply


def run_pipeline(connection: Any, commands: Sequence[Command], callbacks: dict[str, Any]) -> list:
    """Sends a pipeline's ``commands`` and reads every reply, each through its command's
    response callback; error replies are answered in their place (redis-py's
    ``Pipeline._execute_pipeline`` without ``raise_on_error``)."""
    send(connection, [args for args, _ in commands])
    replies: list[Any] = []
    failure: Exception | None = None
    for args, options in commands:
        reply = read_reply(connection)
        if isinstance(reply, ResponseError):
            replies.append(options.get(EMPTY_RESPONSE, reply))
            continue
        callback = callbacks.get(args[0])
        if callback is not None and failure is None:
            try:
                reply = callback(reply, **_callback_options(options))
            except Exception as error:  # noqa: BLE001 - raised once the rest is read (in step)
                failure = error
        replies.append(reply)
    if failure is not None:
        raise failure
    return replies


def _split_name(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """redis-py sends a command named in two words (``"SCRIPT LOAD"``) as two arguments."""
    name = args[0]
    if isinstance(name, str) and " " in name:
        return (*name.split(), *args[1:])
    return args


def _callback_options(options: dict[str, Any]) -> dict[str, Any]:
    if not options:
        return options
    return {key: value for key, value in options.items() if key not in ("keys", EMPTY_RESPONSE)}

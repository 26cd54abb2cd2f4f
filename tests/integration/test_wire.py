"""wire.py (commands packed and replies read with hiredis directly) against a real redis-server:
every reply is what redis-py's own pipeline code answers for the same commands, error replies
included, and a command it cannot pack or a reply callback that fails leaves the connection in
step with Redis."""

from __future__ import annotations

from typing import Any

import fakeredis
import pytest
import redis
from redis.exceptions import DataError, NoScriptError, ResponseError

from webservice.store import wire
from webservice.store.direct import DirectLine

from .test_direct_line import client_of


def queue_everything(pipe: Any) -> Any:
    """Commands whose replies go through redis-py's callbacks in different ways."""
    pipe.hset("h", mapping={"a": "1", "b": "2"}).hgetall("h").hgetall("missing")
    # (PTTL of a key without expiry: the two runs compared would differ by a millisecond tick.)
    pipe.set("s", "é", px=60_000).get("s").get("missing").pttl("h").pttl("missing")
    pipe.zadd("z", {"m1": 1.5, "m2": 2}).zrange("z", 0, -1, withscores=True).zcard("z")
    pipe.xadd("x", {"event": "login", "user": "alice"}, maxlen=100, approximate=True)
    pipe.xlen("x").exists("h", "s", "missing").delete("missing").expire("h", 60)
    pipe.execute_command("SCRIPT LOAD", "return 1")
    return pipe


@pytest.mark.parametrize("decode", [True, False])
def test_pipeline_replies_are_what_redis_py_answers(redis_server, real_redis, decode):
    expected_client = client_of(redis_server)
    expected_client.connection_pool.connection_kwargs["decode_responses"] = decode
    expected = queue_everything(expected_client.pipeline(transaction=False)).execute()
    real_redis.flushall()
    client = client_of(redis_server)
    client.connection_pool.connection_kwargs["decode_responses"] = decode
    replies = DirectLine(client).execute(queue_everything(client.pipeline(transaction=False)))
    connection = client.connection_pool.get_connection()
    assert wire.short_way(connection)  # the replies above came the short way
    client.connection_pool.release(connection)
    stream_id = 11  # stream ids differ from run to run
    assert replies[stream_id] and expected[stream_id]
    replies[stream_id] = expected[stream_id] = "id"
    assert replies == expected
    expected_client.close()
    client.close()


def test_a_script_redis_does_not_know_raises_noscript_in_a_pipeline(redis_server, real_redis):
    client = client_of(redis_server)
    line = DirectLine(client)
    pipe = client.pipeline(transaction=False).set("k", "1").evalsha("0" * 40, 0).get("k")
    with pytest.raises(NoScriptError, match=r"Command # 2 \(EVALSHA"):
        line.execute(pipe)
    assert line.call("GET", "k") == "1"
    with pytest.raises(NoScriptError):
        line.call("EVALSHA", "0" * 40, 0)
    assert line.call("PING") in (True, "PONG")
    client.close()


def test_an_argument_hiredis_cannot_pack_is_refused_like_redis_py_refuses_it(
    redis_server, real_redis
):
    client = client_of(redis_server)
    line = DirectLine(client)
    first = line.call("CLIENT", "ID")
    with pytest.raises(DataError):
        line.call("SET", "k", None)
    with pytest.raises(DataError):
        line.execute(client.pipeline(transaction=False).set("k", "v").set("b", True))
    assert line.call("GET", "k") is None  # nothing of the refused pipeline was sent
    assert line.call("CLIENT", "ID") == first
    client.close()


def test_a_failing_reply_callback_is_raised_after_every_reply_was_read(redis_server, real_redis):
    client = client_of(redis_server)
    line = DirectLine(client)
    real_redis.set("k", "v")

    def broken(response: Any, **options: Any) -> Any:
        raise ValueError("broken callback")

    client.set_response_callback("GET", broken)
    with pytest.raises(ValueError, match="broken callback"):
        line.execute(client.pipeline(transaction=False).get("k").set("after", "1").exists("k"))
    client.set_response_callback("GET", lambda response, **options: response)
    assert real_redis.get("after") == "1"  # the command after it ran
    assert line.call("GET", "k") == "v"  # and no reply of that pipeline was left on the socket
    client.close()


def test_a_stand_in_connection_is_served_by_redis_py():
    client = fakeredis.FakeRedis(decode_responses=True)
    connection = client.connection_pool.get_connection()
    assert not wire.short_way(connection)
    client.connection_pool.release(connection)
    line = DirectLine(client)
    assert line.execute(client.pipeline(transaction=False).set("k", "v").get("k")) == [True, "v"]
    assert line.call("GET", "k") == "v"


def test_an_error_reply_is_answered_in_place_not_raised(redis_server, real_redis):
    client = client_of(redis_server)
    real_redis.set("text", "v")
    connection = client.connection_pool.get_connection()
    try:
        commands = [(("HGET", "text", "f"), {}), (("GET", "text"), {})]
        replies = wire.run_pipeline(connection, commands, client.response_callbacks)
        assert isinstance(replies[0], ResponseError) and "WRONGTYPE" in str(replies[0])
        assert replies[1] == "v"
    finally:
        client.connection_pool.release(connection)
        client.close()


def test_a_dead_socket_is_a_connection_error(redis_server, real_redis):
    client = client_of(redis_server)
    connection = client.connection_pool.get_connection()
    try:
        real_redis.client_kill_filter(_id=wire.call(connection, ("CLIENT", "ID")))
        with pytest.raises(redis.ConnectionError):
            wire.call(connection, ("GET", "k"))
    finally:
        connection.disconnect()
        client.connection_pool.release(connection)
        client.close()


class WatchedSocket:
    """A connection's socket that notes each write (``send`` or ``sendall``) and can make
    ``send`` write only ``send_at_most`` bytes, or fail."""

    def __init__(self, sock: Any, send_at_most: int | None = None, fail: bool = False) -> None:
        self._sock = sock
        self.send_at_most = send_at_most
        self.fail = fail
        self.writes: list[tuple[str, bytes]] = []

    def send(self, data: bytes) -> int:
        if self.fail:
            raise BrokenPipeError(32, "Broken pipe")
        part = bytes(data[: self.send_at_most])
        self.writes.append(("send", part))
        return self._sock.send(part)

    def sendall(self, data: bytes) -> None:
        self.writes.append(("sendall", bytes(data)))
        self._sock.sendall(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def watched_line(redis_server, **watch: Any) -> tuple[redis.Redis, DirectLine, WatchedSocket]:
    """A direct line whose one connection's socket is watched (connected by a first call)."""
    client = client_of(redis_server)
    line = DirectLine(client)
    line.call("PING")
    connection = client.connection_pool.get_connection()
    socket = WatchedSocket(connection._sock, **watch)
    connection._sock = connection._parser._sock = socket
    client.connection_pool.release(connection)
    return client, line, socket


def twelve_sets(client: redis.Redis) -> Any:
    pipe = client.pipeline(transaction=False)
    for index in range(12):
        pipe.set(f"k{index}", "v" * 20)
    return pipe


def test_a_pipeline_is_written_in_one_write(redis_server, real_redis):
    """Packed into one buffer and written at once, as redis-py's own packing does (a write per
    command would cost a system call each, and Redis a read each), with one ``send`` (gevent's
    ``sendall`` costs a system call more)."""
    client, line, socket = watched_line(redis_server)
    assert line.execute(twelve_sets(client)) == [True] * 12
    assert [how for how, _ in socket.writes] == ["send"]
    assert socket.writes[0][1].count(b"SET") == 12
    client.close()


def test_what_a_send_leaves_is_written_after_it(redis_server, real_redis):
    """A send that takes only part of a pipeline (the socket's buffer full): the rest follows
    through redis-py's ``sendall``, each byte once, and every reply is read."""
    client, line, socket = watched_line(redis_server, send_at_most=10)
    assert line.execute(twelve_sets(client)) == [True] * 12
    assert [how for how, _ in socket.writes] == ["send", "sendall"]
    first, rest = socket.writes[0][1], socket.writes[1][1]
    assert len(first) == 10 and (first + rest).count(b"SET") == 12
    assert real_redis.get("k11") == "v" * 20
    client.close()


def test_a_send_that_fails_is_written_again_by_redis_py(redis_server, real_redis):
    """A send that fails wrote nothing: redis-py's own write sends the pipeline whole (and would
    raise and disconnect as it does, had it failed too)."""
    client, line, socket = watched_line(redis_server, fail=True)
    assert line.execute(twelve_sets(client)) == [True] * 12
    assert [how for how, _ in socket.writes] == ["sendall"]
    assert socket.writes[0][1].count(b"SET") == 12
    client.close()


def test_a_connection_not_yet_connected_goes_through_redis_py_once(redis_server, real_redis):
    """Its handshake (HELLO) settles the protocol its replies come in: only then can the
    client's response callbacks be trusted to match."""
    client = client_of(redis_server)
    connection = client.connection_pool.get_connection()
    connection.disconnect()
    assert not wire.short_way(connection)
    client.connection_pool.release(connection)
    line = DirectLine(client)
    assert line.execute(client.pipeline(transaction=False).hset("h", "f", "v").hgetall("h")) == [
        1,
        {"f": "v"},
    ]
    connection = client.connection_pool.get_connection()
    assert wire.short_way(connection)
    client.connection_pool.release(connection)
    client.close()

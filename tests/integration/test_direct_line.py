"""The direct line (webservice/store/direct.py) against a real redis-server: it shares the pool's
connections, keeps every connection in step with Redis whatever fails, retries a dead connection
once and a timeout never, and never uses a connection of its parent after a fork."""

from __future__ import annotations

import os
import signal
import time

import pytest
import redis

from webservice.standalone.redis_server import RedisServer
from webservice.store.client import connect
from webservice.store.direct import DirectLine


def client_of(server: RedisServer, socket_timeout: float = 2.0) -> redis.Redis:
    return connect(
        {
            "REDIS_URL": server.url,
            "REDIS_CLUSTER": False,
            "REDIS_CONNECT_TIMEOUT": 1.0,
            "REDIS_SOCKET_TIMEOUT": socket_timeout,
        }
    )


def test_direct_calls_and_client_calls_share_one_connection(tmp_path):
    """A server of its own: counting its clients counts this test's only."""
    server = RedisServer(tmp_path / "redis").start()
    try:
        client = client_of(server)
        line = DirectLine(client)
        client.set("k", "v")
        for _ in range(20):
            assert line.call("GET", "k") == "v"
            assert client.get("k") == "v"
            with client.pipeline(transaction=False) as pipe:
                assert line.execute(pipe.get("k").exists("k")) == ["v", 1]
        assert len(client.client_list()) == 1
        client.close()
    finally:
        server.stop()


def test_an_error_reply_leaves_the_connection_in_step(redis_server, real_redis):
    client = client_of(redis_server)
    line = DirectLine(client)
    real_redis.set("text", "v")
    first = line.call("CLIENT", "ID")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        line.call("HGET", "text", "field")
    # The same connection answers the next command with its own reply.
    assert line.call("GET", "text") == "v"
    assert line.call("CLIENT", "ID") == first
    # A pipeline with an error in its middle: raised once every reply was read.
    pipe = client.pipeline(transaction=False).set("x", "1").hget("text", "f").get("x")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        line.execute(pipe)
    assert real_redis.get("x") == "1"
    assert line.call("GET", "text") == "v"
    assert line.call("CLIENT", "ID") == first
    client.close()


def test_a_connection_killed_under_it_is_replaced_and_the_command_answered(
    redis_server, real_redis
):
    client = client_of(redis_server)
    line = DirectLine(client)
    real_redis.set("k", "v")
    before = line.call("CLIENT", "ID")
    real_redis.client_kill_filter(_id=before)
    assert line.call("GET", "k") == "v"
    after = line.call("CLIENT", "ID")
    assert after != before
    real_redis.client_kill_filter(_id=after)
    with client.pipeline(transaction=False) as pipe:
        assert line.execute(pipe.get("k").exists("k")) == ["v", 1]
    assert line.call("CLIENT", "ID") not in (before, after)
    client.close()


def test_a_hung_redis_is_not_retried_and_no_stale_reply_is_taken_later(tmp_path):
    """SIGSTOP: the command times out once (not twice: no retry). After SIGCONT, Redis sends the
    reply of the command that timed out; the connection it arrives on was dropped, so the next
    command gets its own reply."""
    socket_timeout = 0.5
    server = RedisServer(tmp_path / "redis").start()
    try:
        client = client_of(server, socket_timeout)
        line = DirectLine(client)
        client.set("old", "stale")
        client.set("new", "fresh")
        assert line.call("GET", "new") == "fresh"
        server.process.send_signal(signal.SIGSTOP)
        try:
            started = time.monotonic()
            with pytest.raises(redis.TimeoutError):
                line.call("GET", "old")
            assert time.monotonic() - started < 2 * socket_timeout
        finally:
            server.process.send_signal(signal.SIGCONT)
        for _ in range(5):
            assert line.call("GET", "new") == "fresh"
        client.close()
    finally:
        server.stop()


def test_an_interrupted_read_drops_the_connection(redis_server, real_redis, monkeypatch):
    """Anything that stops a call between its send and its reply (a greenlet killed, a
    KeyboardInterrupt) leaves a reply in flight: that connection must never answer again."""
    client = client_of(redis_server)
    line = DirectLine(client)
    real_redis.set("a", "1")
    real_redis.set("b", "2")
    assert line.call("GET", "b") == "2"

    class Interrupted(BaseException):
        pass

    connection_class = client.connection_pool.connection_class
    original = connection_class.read_response

    def interrupted(self, *args, **kwargs):
        monkeypatch.setattr(connection_class, "read_response", original)
        raise Interrupted

    monkeypatch.setattr(connection_class, "read_response", interrupted)
    with pytest.raises(Interrupted):
        line.call("GET", "a")
    assert [line.call("GET", "b") for _ in range(3)] == ["2", "2", "2"]
    client.close()


def test_a_forked_child_never_uses_its_parents_connection(redis_server, real_redis):
    client = client_of(redis_server)
    line = DirectLine(client)
    parent = line.call("CLIENT", "ID")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: reports the id of the connection it used, then leaves at once
        try:
            os.write(write, str(line.call("CLIENT", "ID")).encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = int(os.read(read, 64) or b"0")
    os.close(read)
    assert child and child != parent
    assert line.call("CLIENT", "ID") == parent
    client.close()

"""The Sentinel tier: the gateway on a Redis master watched by Redis Sentinel.

One master, one replica (``--replicaof``) and one sentinel (``redis-server sentinel.conf
--sentinel``), all on loopback ports, with passwords on the data nodes and on the sentinel so that
every credential setting is exercised. The gateway finds the master only through the sentinel.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from webservice.standalone.redis_server import (
    RedisServer,
    RedisServerError,
    find_binary,
)

MASTER_NAME = "wsgate-master"
DATA_PASSWORD = "data-password-for-tests"
SENTINEL_PASSWORD = "sentinel-password-for-tests"
#: Small, so that the tier is quick: how long the sentinel waits before it calls a silent master
#: down, and the longest a failover may take before the sentinel tries again.
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000
#: The traffic of the failover tests is this heavy: the limits on logins and challenges would
#: refuse most of it, and one user's cap on live logins would end its oldest (a run keeps over a
#: thousand), which the checks of what a failover lost would count as lost.
NO_LIMITS = {
    "CHALLENGE_RATE_LIMIT": 0,
    "LOGIN_FAILURE_LIMIT": 0,
    "LOGIN_ADDRESS_FAILURE_LIMIT": 0,
    "MAX_FAMILIES_PER_USER": 1_000_000,
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sentinel: runs on a Redis master watched by Sentinel")


class PasswordRedisServer(RedisServer):
    """A RedisServer with ``requirepass``: a ``NOAUTH`` answer to PING means it is up."""

    def _answers_ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False


class SentinelServer(PasswordRedisServer):
    """``redis-server <dir>/sentinel.conf --sentinel`` (a sentinel needs a config file it can
    rewrite); ``config`` is what the file says besides the options every RedisServer gets."""

    def __init__(self, directory: Path, config: list[str]) -> None:
        super().__init__(directory)
        self.config = config

    @property
    def config_path(self) -> Path:
        return self.directory / "sentinel.conf"

    def command(self) -> list[str]:
        return [
            find_binary(), str(self.config_path), "--sentinel",
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.directory),
            "--daemonize", "no",
            "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip

    def start(self, timeout: float = 10.0) -> RedisServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text("\n".join(self.config) + "\n")
        return super().start(timeout)


@dataclass
class SentinelSetup:
    master: PasswordRedisServer
    replica: PasswordRedisServer
    sentinel: SentinelServer

    @property
    def settings(self) -> dict[str, Any]:
        """The gateway's settings: the sentinel's address and the master's name, never the
        master's own address (the URL gives the database and the data nodes' password)."""
        return {
            "REDIS_URL": f"redis://:{DATA_PASSWORD}@unused-with-sentinel/0",
            "REDIS_SENTINELS": [f"127.0.0.1:{self.sentinel.port}"],
            "REDIS_SENTINEL_MASTER": MASTER_NAME,
            "REDIS_SENTINEL_PASSWORD": SENTINEL_PASSWORD,
        }

    def sentinel_client(self) -> redis.Redis:
        return redis.Redis(
            port=self.sentinel.port, password=SENTINEL_PASSWORD, decode_responses=True
        )

    def data_client(self, server: RedisServer, **options: Any) -> redis.Redis:
        return redis.Redis(port=server.port, password=DATA_PASSWORD, **options)

    def master_port(self) -> int:
        """The master's port, as the sentinel names it now."""
        with self.sentinel_client() as client:
            _, port = client.sentinel_get_master_addr_by_name(MASTER_NAME)
        return int(port)

    def role(self, server: RedisServer) -> str:
        with self.data_client(server, decode_responses=True) as client:
            return client.info("replication")["role"]

    def stop(self) -> None:
        for server in (self.sentinel, self.replica, self.master):
            server.stop()


def start_sentinel_setup(directory: Path, timeout: float = 30.0) -> SentinelSetup:
    auth = [
        "--requirepass", DATA_PASSWORD, "--masterauth", DATA_PASSWORD,
        # The replica's first sync starts at once (Redis 7 waits 5 s for more replicas).
        "--repl-diskless-sync-delay", "0",
    ]  # fmt: skip
    # Each server picks its free port only once the one before it listens: two ports picked
    # before either server started may be the same one.
    started: list[RedisServer] = []
    try:
        master = PasswordRedisServer(directory / "master", extra_args=auth)
        started.append(master.start())
        replica = PasswordRedisServer(
            directory / "replica", extra_args=[*auth, "--replicaof", "127.0.0.1", str(master.port)]
        )
        started.append(replica.start())
        sentinel = SentinelServer(
            directory / "sentinel",
            config=[
                f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master.port} 1",
                f"sentinel auth-pass {MASTER_NAME} {DATA_PASSWORD}",
                f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}",
                f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}",
                f"sentinel parallel-syncs {MASTER_NAME} 1",
                f"requirepass {SENTINEL_PASSWORD}",
            ],
        )
        started.append(sentinel.start())
        setup = SentinelSetup(master, replica, sentinel)
        wait_until_ready(setup, time.monotonic() + timeout)
    except BaseException:
        for server in reversed(started):
            server.stop()
        raise
    return setup


def wait_until_ready(setup: SentinelSetup, deadline: float) -> None:
    """The replica is in sync and the sentinel knows it as a healthy replica of the master, so
    that a failover can pick it."""
    sentinel = setup.sentinel_client()
    try:
        while True:
            replicas = _safe(lambda: sentinel.sentinel_slaves(MASTER_NAME)) or []
            master = _safe(lambda: sentinel.sentinel_master(MASTER_NAME)) or {}
            synced = _safe(
                lambda: setup.data_client(setup.replica, decode_responses=True).info("replication")
            ) or {}
            healthy = [
                r for r in replicas
                if r.get("is_slave") and not r.get("is_sdown") and not r.get("is_odown")
                and r.get("master-link-status") == "ok"
            ]  # fmt: skip
            if (
                healthy
                and master.get("is_master")
                and not master.get("is_sdown")
                and synced.get("master_link_status") == "up"
            ):
                return
            if time.monotonic() > deadline:
                raise RedisServerError(f"sentinel setup not ready: {master} {replicas} {synced}")
            time.sleep(0.05)
    finally:
        sentinel.close()


def _safe(call: Any) -> Any:
    try:
        return call()
    except redis.RedisError:
        return None


@pytest.fixture(scope="module")
def sentinel_servers(tmp_path_factory) -> Iterator[SentinelSetup]:
    """A master, its replica and a sentinel, for one test module."""
    setup = start_sentinel_setup(tmp_path_factory.mktemp("sentinel"))
    try:
        yield setup
    finally:
        setup.stop()


@pytest.fixture
def sentinel_setup(sentinel_servers: SentinelSetup) -> SentinelSetup:
    """The module's master, replica and sentinel, the master emptied before each test."""
    with sentinel_servers.data_client(sentinel_servers.master) as master:
        master.flushall()
    return sentinel_servers

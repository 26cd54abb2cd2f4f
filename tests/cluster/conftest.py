"""The cluster tier: the gateway on a real Redis Cluster of three masters.

One cluster serves the whole run: three ``redis-server`` processes with ``--cluster-enabled yes`` on
loopback ports, joined by ``redis-cli --cluster create`` (no replicas). The fixtures the integration
tier's tests ask for (``real_redis``, ``real_app``, ``make_app``, ``alice``, ...) are redefined here
over the cluster, so tests/cluster runs the integration tier's own session tests on it unchanged
(each module here imports the ones it reruns). Every app is configured as in production:
``REDIS_CLUSTER`` with one seed node in ``REDIS_URL``.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from redis.cluster import RedisCluster

from tests.conftest import TEST_SETTINGS
from tests.integration.conftest import alice, logged_in  # noqa: F401  (fixtures rerun here)
from webservice.standalone import create_app
from webservice.standalone.redis_server import (
    RedisServer,
    RedisServerError,
    find_binary,
    free_port,
)

MASTERS = 3
#: A cluster node's bus listens on its port + 10000, so a node's port can be at most this.
HIGHEST_NODE_PORT = 65535 - 10000


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cluster: runs on a real 3-master Redis Cluster")


def cluster_node_port() -> int:
    """A free loopback port whose cluster bus port (+10000) is free as well."""
    for _ in range(200):
        port = free_port()
        if port > HIGHEST_NODE_PORT:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RedisServerError("no free loopback port pair for a cluster node")


@dataclass
class LocalCluster:
    """A running cluster: its nodes (all masters), and the settings that point an app at it."""

    nodes: list[RedisServer]

    @property
    def url(self) -> str:
        """The seed node the gateway is configured with; it finds the others itself."""
        return self.nodes[0].url

    @property
    def settings(self) -> dict[str, Any]:
        return {"REDIS_URL": self.url, "REDIS_CLUSTER": True}

    def node_clients(self, **options: Any) -> list[redis.Redis]:
        """A plain client of each node (no cluster routing): what is really on each master."""
        return [redis.Redis(host="127.0.0.1", port=node.port, **options) for node in self.nodes]

    def client(self, **options: Any) -> RedisCluster:
        return RedisCluster.from_url(self.url, **options)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def start_cluster(
    directory: Path, masters: int = MASTERS, *, persistent: bool = False, timeout: float = 30.0
) -> LocalCluster:
    """Starts ``masters`` cluster-enabled redis-servers, joins them and waits for
    ``cluster_state:ok`` on every node. ``persistent``: append-only files, so that a node stopped
    and started again keeps its data (its cluster configuration is kept either way)."""
    nodes: list[RedisServer] = []
    cluster = LocalCluster(nodes)
    try:
        # Each node picks its free ports once the nodes before it listen: ports picked together
        # before any node started may be the same one.
        for index in range(masters):
            node_dir = directory / f"node{index}"
            node = RedisServer(
                node_dir,
                cluster_node_port(),
                persistent=persistent,
                extra_args=[
                    "--cluster-enabled", "yes",
                    "--cluster-config-file", str(node_dir.resolve() / "nodes.conf"),
                    "--cluster-node-timeout", "5000",
                ],
            )  # fmt: skip
            nodes.append(node.start())
        created = subprocess.run(
            [find_binary("redis-cli"), "--cluster", "create",
             *(f"127.0.0.1:{node.port}" for node in nodes),
             "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False,
        )  # fmt: skip
        if created.returncode != 0:
            raise RedisServerError(f"redis-cli --cluster create failed: {created.stdout}{created.stderr}")
        _wait_until_ok(cluster, time.monotonic() + timeout)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _wait_until_ok(cluster: LocalCluster, deadline: float) -> None:
    """Every node says ``cluster_state:ok`` and knows every node (the slot map has spread)."""
    clients = cluster.node_clients(decode_responses=True)
    try:
        while True:
            states = [client.execute_command("CLUSTER", "INFO") for client in clients]
            known = [len(client.execute_command("CLUSTER", "NODES").splitlines()) for client in clients]
            if all(_state(info) == "ok" for info in states) and set(known) == {len(clients)}:
                return
            if time.monotonic() > deadline:
                raise RedisServerError(f"the cluster did not reach cluster_state:ok: {states}")
            time.sleep(0.05)
    finally:
        for client in clients:
            client.close()


def _state(info: Any) -> str | None:
    if isinstance(info, dict):
        return info.get("cluster_state")
    for line in str(info).splitlines():
        if line.startswith("cluster_state:"):
            return line.split(":", 1)[1].strip()
    return None


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory) -> Iterator[LocalCluster]:
    """A real 3-master Redis Cluster on loopback, for the whole run."""
    cluster = start_cluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def redis_server():
    """The cluster tier has no single redis-server: a reused test that reaches for one fails
    here instead of quietly testing the wrong thing."""
    raise AssertionError("a cluster-tier test asked for the single redis-server")


@pytest.fixture
def real_redis(redis_cluster: LocalCluster) -> Iterator[RedisCluster]:
    """A cluster client (str answers), every master emptied before each test."""
    client = redis_cluster.client(decode_responses=True)
    client.flushall(target_nodes=RedisCluster.PRIMARIES)
    yield client
    client.close()


@pytest.fixture
def cluster_settings(redis_cluster: LocalCluster) -> dict[str, Any]:
    return {**TEST_SETTINGS, **redis_cluster.settings}


@pytest.fixture
def make_app(real_redis, cluster_settings) -> Callable[..., Flask]:
    """Builds app instances over the cluster (each with its own clients, as a worker would)."""

    def build(**settings: Any) -> Flask:
        return create_app({**cluster_settings, **settings})

    return build


@pytest.fixture
def real_app(make_app) -> Iterator[Flask]:
    application = make_app()
    with application.app_context():
        yield application

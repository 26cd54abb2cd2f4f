"""Confirmed revocations on a Redis Cluster: the confirmation is asked of the master that holds
the family. A cluster of its own: three masters, the first with a replica, the others without.
With REDIS_WAIT_REPLICAS 1, a logout of a family on the first master is confirmed, one on another
master is not (SERVICE_UNAVAILABLE, ended all the same), and each master counts exactly the WAITs
of its own families."""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from flask import Flask
from redis.cluster import RedisCluster

from tests.cluster.conftest import LocalCluster, cluster_node_port, start_cluster
from tests.conftest import TEST_SETTINGS
from tests.integration.conftest import USERNAME, client_of
from webservice.standalone import create_app
from webservice.standalone.redis_server import RedisServer, RedisServerError, find_binary
from webservice.store.tokens import SessionId

pytestmark = pytest.mark.cluster

NOT_CONFIRMED = {"code": "SERVICE_UNAVAILABLE", "message": "Logout not confirmed; retry"}


@pytest.fixture(scope="module")
def cluster_with_one_replica(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    directory = tmp_path_factory.mktemp("cluster-replica")
    cluster = start_cluster(directory)
    replica_dir = directory / "replica"
    replica = RedisServer(
        replica_dir,
        cluster_node_port(),
        extra_args=[
            "--cluster-enabled", "yes",
            "--cluster-config-file", str(replica_dir.resolve() / "nodes.conf"),
            "--cluster-node-timeout", "5000",
            "--repl-diskless-sync-delay", "0",
        ],
    )  # fmt: skip
    try:
        replica.start()
        first = cluster.node_clients(decode_responses=True)[0]
        master_id = first.execute_command("CLUSTER", "MYID")
        added = subprocess.run(
            [find_binary("redis-cli"), "--cluster", "add-node",
             f"127.0.0.1:{replica.port}", f"127.0.0.1:{cluster.nodes[0].port}",
             "--cluster-slave", "--cluster-master-id", master_id],
            capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL, check=False,
        )  # fmt: skip
        assert added.returncode == 0, added.stdout + added.stderr
        deadline = time.monotonic() + 20
        while first.info("replication").get("connected_slaves") != 1 or first.wait(1, 100) != 1:
            if time.monotonic() > deadline:
                raise RedisServerError("the replica of the first master did not sync")
            time.sleep(0.1)
        first.close()
        yield cluster
    finally:
        replica.stop()
        cluster.stop()


def app_on(cluster: LocalCluster, replicas: int) -> Flask:
    return create_app(
        {
            **TEST_SETTINGS,
            **cluster.settings,
            "REDIS_WAIT_REPLICAS": replicas,
            "REDIS_WAIT_TIMEOUT": 100,
        }
    )


def waits_per_node(cluster: LocalCluster) -> Counter:
    counts: Counter = Counter()
    for node, client in zip(cluster.nodes, cluster.node_clients(decode_responses=True)):
        stats = client.info("commandstats")
        counts[node.port] = int(stats.get("cmdstat_wait", {}).get("calls", 0))
        client.close()
    return counts


def test_the_master_holding_the_family_confirms_its_logout(
    cluster_with_one_replica: LocalCluster,
):
    cluster = cluster_with_one_replica
    plain = app_on(cluster, replicas=0)
    access_key = plain.extensions["wsgate"].users.add(USERNAME).access_key or ""
    durable = app_on(cluster, replicas=1)
    keys = durable.extensions["wsgate"].keys
    router = RedisCluster.from_url(cluster.url, decode_responses=True)
    replicated_port = cluster.nodes[0].port

    # Sessions logged in without confirmation, until both kinds of master hold some.
    sessions: dict[bool, list[str]] = {True: [], False: []}
    while min(len(found) for found in sessions.values()) < 2:
        ws = client_of(plain)
        assert ws.login(USERNAME, access_key)["success"]
        parsed = SessionId.parse(ws.session_name)
        assert parsed is not None
        node = router.get_node_from_key(keys.family(parsed.family_id))
        sessions[node.port == replicated_port].append(ws.session_name)

    before = waits_per_node(cluster)
    expected: Counter = Counter()
    for on_replicated, names in sessions.items():
        for name in names:
            ws = client_of(durable)
            ws.session_name = name
            parsed = SessionId.parse(name)
            assert parsed is not None
            node = router.get_node_from_key(keys.family(parsed.family_id))
            answer = ws.authed("logout")
            expected[node.port] += 1
            if on_replicated:
                assert answer["result"] == {"message": "successfull"}
            else:
                assert answer["error"] == NOT_CONFIRMED
                # Ended on its master all the same; its retry is not confirmed either.
                assert not router.exists(keys.family(parsed.family_id))
                assert ws.authed("logout")["error"] == NOT_CONFIRMED
                expected[node.port] += 1
    after = waits_per_node(cluster)
    assert {port: after[port] - before[port] for port in after} == {
        node.port: expected[node.port] for node in cluster.nodes
    }
    router.close()

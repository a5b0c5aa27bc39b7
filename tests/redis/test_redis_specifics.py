"""Redis specifics: one round trip, no KEYS, cluster slots, faults, old servers."""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any

import pytest
import redis
import redis.asyncio
from langgraph.store.base import GetOp, ListNamespacesOp, PutOp, SearchOp

from langmem_prod import AsyncRedisStore, RedisStore, errors
from langmem_prod.embedded import EmbeddedRedis
from langmem_prod.store._retry import RetryPolicy
from langmem_prod.store.redis._driver import close_client
from langmem_prod.store.redis._server import check_server
from tests.backends import unique_name
from tests.conftest import RedisServer


class CountingConnection(redis.Connection):
    """A real connection that counts the payloads it sends (one per round trip)."""

    sends = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.sends += 1
        super().send_packed_command(command, check_health)


def keys_of(client: Any, prefix: str) -> list[bytes]:
    return list(client.scan_iter(match=f"{prefix}:*", count=1000))


@pytest.fixture
def standalone(rs: RedisServer) -> RedisServer:
    if rs.cluster:
        pytest.skip("a standalone server is needed")
    return rs


def test_one_round_trip_per_get_and_per_batch(standalone: RedisServer) -> None:
    pool = redis.ConnectionPool.from_url(standalone.url, connection_class=CountingConnection)
    client = redis.Redis(connection_pool=pool)
    prefix = unique_name()
    with RedisStore(client, prefix=prefix, start_sweeper=False) as store:
        store.setup()
        store.batch([PutOp(("ns", str(i % 60)), f"k{i}", {"i": i}) for i in range(100)])
        CountingConnection.sends = 0
        store.get(("ns", "1"), "k1")
        assert CountingConnection.sends == 1
        CountingConnection.sends = 0
        results = store.batch([GetOp(("ns", str(i % 60)), f"k{i}") for i in range(100)])
        assert CountingConnection.sends == 1 and all(r is not None for r in results)
        CountingConnection.sends = 0
        store.batch(
            [
                GetOp(("ns", "1"), "k1"),
                SearchOp(("ns",), {"i": {"$gte": 3}}),
                ListNamespacesOp(),
                PutOp(("ns", "2"), "k2", {"i": 2}),
                PutOp(("ns", "3"), "k3", None),
            ]
        )
        assert CountingConnection.sends == 1
    for key in keys_of(client, prefix):
        client.delete(key)
    close_client(client)


def test_never_keys(rs: RedisServer) -> None:
    client: Any = (
        redis.RedisCluster.from_url(rs.url) if rs.cluster else redis.Redis.from_url(rs.url)
    )

    def keys_calls() -> int:
        stats = client.info("commandstats")
        nodes = stats.values() if rs.cluster else [stats]
        return sum(node.get("cmdstat_keys", {}).get("calls", 0) for node in nodes)

    before = keys_calls()
    prefix = unique_name()
    with RedisStore(client, prefix=prefix, start_sweeper=False) as store:
        store.setup()
        store.batch([PutOp(("a", str(i)), "k", {"i": i}, ttl=0.001) for i in range(20)])
        store.search(("a",), filter={"i": {"$lt": 5}})
        store.list_namespaces(prefix=("a",), max_depth=1)
        store.sweep_ttl()
    assert keys_calls() == before
    for key in keys_of(client, prefix):
        client.delete(key)
    close_client(client)


def test_a_namespace_stays_in_one_slot_on_a_cluster(redis_cluster: Any) -> None:
    client = redis.RedisCluster.from_url(redis_cluster.url)
    prefix = unique_name()
    with RedisStore(client, prefix=prefix, start_sweeper=False) as store:
        store.setup()
        namespaces = [("tenant", str(t), "user", str(u)) for t in range(8) for u in range(3)]
        store.batch([PutOp(ns, f"k{i}", {"i": i}) for i, ns in enumerate(namespaces)])
        keys = keys_of(client, prefix)
        slots_by_ns: dict[str, set[int]] = {}
        for key in keys:
            if b":r:" in key:
                ns = key.split(b":r:")[1].split(b"\x00")[0].decode()
                slots_by_ns.setdefault(".".join(ns.split(".")[:2]), set()).add(client.keyslot(key))
        assert len(slots_by_ns) == 8
        assert all(len(slots) == 1 for slots in slots_by_ns.values())
        used = {client.keyslot(k) for k in keys}
        nodes = {client.get_node_from_key(k).name for k in keys}
        assert len(used) > 1 and len(nodes) > 1  # spread over the cluster
        assert sorted(store.list_namespaces(prefix=("tenant",), max_depth=2)) == [
            ("tenant", str(t)) for t in range(8)
        ]
        store.batch([PutOp(ns, f"k{i}", None) for i, ns in enumerate(namespaces)])
        assert store.list_namespaces() == []
    for key in keys_of(client, prefix):
        client.delete(key)
    close_client(client)


def test_a_restart_is_survived() -> None:
    with (
        EmbeddedRedis() as server,
        RedisStore.from_url(server.url, start_sweeper=False) as store,
    ):
        store.setup()
        store.put(("a",), "k", {"v": 1})
        server.restart()  # an empty server: the scripts are gone too
        assert store.get(("a",), "k") is None
        store.put(("a",), "k", {"v": 2})  # NOSCRIPT: reloaded and sent again
        assert store.get(("a",), "k").value == {"v": 2}


def test_a_dropped_connection_is_retried(standalone: RedisServer) -> None:
    client = redis.Redis.from_url(standalone.url, client_name="langmem-drop")
    killer = redis.Redis.from_url(standalone.url)
    prefix = unique_name()
    with RedisStore(client, prefix=prefix, start_sweeper=False) as store:
        store.setup()
        store.put(("a",), "k", {"v": 1})
        for _ in range(3):
            killer.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
            assert store.get(("a",), "k").value == {"v": 1}
    for key in keys_of(client, prefix):
        client.delete(key)
    close_client(client)
    killer.close()


def test_a_silent_server_is_a_timeout_error() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])  # never answers
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept)
    thread.start()
    client = redis.Redis(port=listener.getsockname()[1], socket_timeout=0.2)
    store = RedisStore(client, start_sweeper=False, retry=RetryPolicy(attempts=2, base_delay=0.01))
    try:
        with pytest.raises(errors.BackendTimeoutError):
            store.get(("a",), "k")
    finally:
        store.close()
        close_client(client)
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        listener.close()


def test_an_unreachable_server_is_unavailable() -> None:
    client = redis.Redis(port=1, socket_connect_timeout=0.2)
    store = RedisStore(client, start_sweeper=False, retry=RetryPolicy(attempts=2, base_delay=0.01))
    with pytest.raises(errors.BackendUnavailableError):
        store.get(("a",), "k")
    store.close()
    close_client(client)


def test_old_servers_are_refused() -> None:
    check_server({"redis_version": "7.0.15"})
    check_server({"valkey_version": "8.0.1", "redis_version": "7.2.4"})
    check_server({"n1": {"redis_version": "7.2.0"}, "n2": {"redis_version": "7.0.0"}})
    with pytest.raises(errors.FeatureUnavailableError, match=r"Redis 6\.2\.14"):
        check_server({"redis_version": "6.2.14"})
    with pytest.raises(errors.FeatureUnavailableError, match=r"Valkey 7\.2\.5"):
        check_server({"valkey_version": "7.2.5", "redis_version": "7.2.4"})


def test_clients_that_decode_responses_work(standalone: RedisServer) -> None:
    client = redis.Redis.from_url(standalone.url, decode_responses=True)
    prefix = unique_name()
    with RedisStore(client, prefix=prefix, start_sweeper=False) as store:
        store.setup()
        store.put(("a",), "k", {"v": "ü"})
        assert store.get(("a",), "k").value == {"v": "ü"}
        assert [i.key for i in store.search(("a",), filter={"v": "ü"})] == ["k"]
    for key in keys_of(client, prefix):
        client.delete(key)
    close_client(client)


async def test_the_wrong_kind_of_client_is_refused(rs: RedisServer) -> None:
    async_client = redis.asyncio.Redis.from_url(rs.url)
    sync_client = redis.Redis.from_url(rs.url)
    with pytest.raises(errors.ConfigurationError, match="AsyncRedisStore"):
        RedisStore(async_client)  # type: ignore[arg-type]
    with pytest.raises(errors.ConfigurationError, match="use RedisStore"):
        AsyncRedisStore(sync_client)  # type: ignore[arg-type]
    await async_client.aclose()
    sync_client.close()
    await asyncio.sleep(0)

"""Redis pools: calls queue for a connection; a pool that stays full is a timeout, in time."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis
import redis.asyncio

from langmem_prod import AsyncRedisStore, RedisStore, errors
from langmem_prod.embedded import EmbeddedRedis
from langmem_prod.store.redis._driver import close_client
from tests.backends import unique_name
from tests.conftest import RedisServer

NS = ("pool", "t")


@pytest.fixture
def standalone(rs: RedisServer) -> RedisServer:
    if rs.cluster:
        pytest.skip("a standalone server's pool")
    return rs


async def test_async_small_pool_of_users_client_loses_no_write(standalone: RedisServer) -> None:
    client = redis.asyncio.Redis.from_url(standalone.url, max_connections=3)
    try:
        async with AsyncRedisStore(client, prefix=unique_name()) as store:
            await store.setup()
            results = await asyncio.gather(
                *(store.aput(NS, f"k{i}", {"i": i}) for i in range(300)), return_exceptions=True
            )
            assert [r for r in results if r is not None] == []
            assert len(await store.asearch(NS, limit=500)) == 300
            await store.abatch([])
    finally:
        await client.aclose()


def _held_sync(client: redis.Redis, n: int) -> list[redis.Connection]:
    return [client.connection_pool.get_connection() for _ in range(n)]


def test_sync_pool_held_by_others_times_out_in_time(standalone: RedisServer) -> None:
    client = redis.Redis.from_url(standalone.url, max_connections=2)
    store = RedisStore(client, prefix=unique_name(), pool_timeout=0.5, start_sweeper=False)
    try:
        store.setup()
        held = _held_sync(client, 2)
        started = time.monotonic()
        with pytest.raises(errors.BackendTimeoutError, match="pool_timeout") as info:
            store.put(NS, "k", {"v": 1})
        assert 0.45 <= time.monotonic() - started < 2.0
        assert info.value.retryable
        for conn in held:
            client.connection_pool.release(conn)
        store.put(NS, "k", {"v": 1})  # the pool came free: writes work again
        assert store.get(NS, "k") is not None
    finally:
        store.close()
        close_client(client)


async def test_async_pool_held_by_others_times_out_in_time(standalone: RedisServer) -> None:
    client = redis.asyncio.Redis.from_url(standalone.url, max_connections=2)
    try:
        async with AsyncRedisStore(client, prefix=unique_name(), pool_timeout=0.5) as store:
            await store.setup()
            held = [await client.connection_pool.get_connection() for _ in range(2)]
            started = time.monotonic()
            with pytest.raises(errors.BackendTimeoutError, match="pool_timeout"):
                await store.aput(NS, "k", {"v": 1})
            assert 0.45 <= time.monotonic() - started < 2.0
            for conn in held:
                await client.connection_pool.release(conn)
            await store.aput(NS, "k", {"v": 1})
    finally:
        await client.aclose()


async def test_queued_calls_time_out_while_the_server_holds_every_connection(
    embedded_valkey: EmbeddedRedis,
) -> None:
    """A paused server keeps the one connection busy: the queued writes time out in time."""
    url = embedded_valkey.url
    client = redis.asyncio.Redis.from_url(url, max_connections=1)
    admin = redis.asyncio.Redis.from_url(url)
    try:
        async with AsyncRedisStore(client, prefix=unique_name(), pool_timeout=0.4) as store:
            await store.setup()
            await admin.execute_command("CLIENT", "PAUSE", "1500", "WRITE")
            started = time.monotonic()
            results = await asyncio.gather(
                *(store.aput(NS, f"k{i}", {"i": i}) for i in range(4)), return_exceptions=True
            )
            timeouts = [r for r in results if isinstance(r, errors.BackendTimeoutError)]
            assert len(timeouts) == 3 and results[0] is None
            assert time.monotonic() - started < 5.0
    finally:
        await admin.execute_command("CLIENT", "UNPAUSE")
        await admin.aclose()
        await client.aclose()


def test_pool_timeout_must_be_positive(standalone: RedisServer) -> None:
    client = redis.Redis.from_url(standalone.url)
    try:
        with pytest.raises(errors.ConfigurationError, match="pool_timeout"):
            RedisStore(client, pool_timeout=0)
    finally:
        close_client(client)

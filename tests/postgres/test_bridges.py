"""The sync store's async methods and the async store's sync methods."""

from __future__ import annotations

import asyncio

import pytest
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from langmem_prod import AsyncPostgresStore, PostgresStore, errors
from tests.conftest import PgServer


async def test_sync_store_async_methods(pg: PgServer, schema: str) -> None:
    with PostgresStore.from_conn_string(pg.url, schema=schema) as store:
        await asyncio.to_thread(store.setup)
        await store.aput(("a",), "k", {"v": 1})
        assert (await store.aget(("a",), "k")).value == {"v": 1}
        assert [i.key for i in await store.asearch(("a",), filter={"v": 1})] == ["k"]
        assert await store.alist_namespaces() == [("a",)]
        await store.adelete(("a",), "k")
        assert await store.aget(("a",), "k") is None


async def test_async_store_sync_methods_from_another_thread(pg: PgServer, schema: str) -> None:
    async with AsyncPostgresStore.from_conn_string(pg.url, schema=schema) as store:
        await store.setup()

        def use_sync() -> object:
            store.put(("a",), "k", {"v": 1})
            return store.get(("a",), "k")

        item = await asyncio.to_thread(use_sync)
        assert item.value == {"v": 1}
        with pytest.raises(errors.SyncCallInEventLoopError, match=r"await"):
            store.get(("a",), "k")


def test_async_store_sync_method_without_its_loop(pg: PgServer) -> None:
    pool = AsyncConnectionPool(pg.url, open=False)  # never opened: no I/O happens here
    store = AsyncPostgresStore(pool, start_sweeper=False)  # built outside any event loop
    with pytest.raises(errors.SyncCallInEventLoopError, match="not running"):
        store.get(("a",), "k")


async def test_the_wrong_kind_of_connection_is_refused(pg: PgServer) -> None:
    sync_pool = ConnectionPool(pg.url, open=False)
    async_pool = AsyncConnectionPool(pg.url, open=False)
    with pytest.raises(errors.ConfigurationError, match="AsyncPostgresStore"):
        PostgresStore(async_pool)  # type: ignore[arg-type]
    with pytest.raises(errors.ConfigurationError, match="use PostgresStore"):
        AsyncPostgresStore(sync_pool)  # type: ignore[arg-type]

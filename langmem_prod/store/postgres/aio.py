"""`AsyncPostgresStore`: the asyncio LangGraph store on PostgreSQL (psycopg 3)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Self

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from langmem_prod.errors import ConfigurationError
from langmem_prod.store._async import AsyncStore
from langmem_prod.store.postgres._base import DEFAULT_SCHEMA, PostgresStoreBase
from langmem_prod.store.postgres._connect import DEFAULT_CONNECT_TIMEOUT, acheck_connection
from langmem_prod.store.postgres._driver import AsyncRunner
from langmem_prod.store.postgres._errors import translate
from langmem_prod.store.postgres._schema import setup_gen


class AsyncPostgresStore(
    PostgresStoreBase[AsyncConnection[Any] | AsyncConnectionPool[Any]], AsyncStore
):
    """LangGraph `BaseStore` on PostgreSQL for asyncio; concurrent reads share one round trip.

    Pass a psycopg `AsyncConnection` (autocommit recommended) or `AsyncConnectionPool`,
    or use `from_conn_string`. Await `setup()` once to create or upgrade the schema.
    Arguments are those of `PostgresStore`.

    Example:
        >>> import asyncio
        >>> from langmem_prod import AsyncPostgresStore
        >>> from langmem_prod.embedded import embedded_postgres
        >>> async def main(url):
        ...     async with AsyncPostgresStore.from_conn_string(url) as store:
        ...         await store.setup()
        ...         await store.aput(("users", "u1"), "prefs", {"theme": "dark"})
        ...         items = await asyncio.gather(*(store.aget(("users", "u1"), "prefs")
        ...                                        for _ in range(3)))  # one query
        ...         return [item.value["theme"] for item in items]
        >>> with embedded_postgres() as url:
        ...     asyncio.run(main(url))
        ['dark', 'dark', 'dark']
    """

    _runner: AsyncRunner

    def _new_runner(self) -> None:
        if not isinstance(self.conn, AsyncConnection | AsyncConnectionPool):
            raise ConfigurationError(
                "AsyncPostgresStore needs a psycopg AsyncConnection or AsyncConnectionPool; "
                "for a Connection or ConnectionPool use PostgresStore"
            )
        self._runner = AsyncRunner(self.conn, self._schema, self.embeddings, self._retry)

    @classmethod
    @asynccontextmanager
    async def from_conn_string(
        cls,
        conn_string: str,
        *,
        pool_size: int = 5,
        pool_timeout: float = 30.0,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        **kwargs: Any,
    ) -> AsyncIterator[Self]:
        """Open a connection pool on `conn_string` and yield a store using it.

        Arguments are those of `PostgresStore.from_conn_string`.
        """
        conninfo = await acheck_connection(conn_string, connect_timeout)
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            conninfo,
            min_size=1,
            max_size=pool_size,
            timeout=pool_timeout,
            kwargs={"autocommit": True},
            open=False,
        )
        try:
            await pool.open(wait=True, timeout=pool_timeout)
        except Exception as exc:
            await pool.close()
            raise translate(exc, kwargs.get("schema", DEFAULT_SCHEMA)) from exc
        try:
            async with cls(pool, **kwargs) as store:
                yield store
        finally:
            await pool.close()

    async def setup(self) -> None:
        """Create or upgrade the schema (idempotent, transactional, concurrency-safe)."""
        await self._runner.run_in_transaction(lambda: setup_gen(self._schema, self._vector))

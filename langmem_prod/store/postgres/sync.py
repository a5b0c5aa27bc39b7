"""`PostgresStore`: the synchronous LangGraph store on PostgreSQL (psycopg 3)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Self

from psycopg import Connection
from psycopg_pool import ConnectionPool

from langmem_prod.errors import ConfigurationError
from langmem_prod.store._sync import SyncStore
from langmem_prod.store.postgres._base import DEFAULT_SCHEMA, PostgresStoreBase
from langmem_prod.store.postgres._connect import DEFAULT_CONNECT_TIMEOUT, check_connection
from langmem_prod.store.postgres._driver import SyncRunner
from langmem_prod.store.postgres._errors import translate
from langmem_prod.store.postgres._schema import setup_gen


class PostgresStore(PostgresStoreBase[Connection[Any] | ConnectionPool[Any]], SyncStore):
    """LangGraph `BaseStore` on PostgreSQL: one round trip per batch, typed filters, TTL.

    Pass a psycopg `Connection` (autocommit recommended) or `ConnectionPool`, or use
    `from_conn_string`. Call `setup()` once to create or upgrade the schema.

    Example:
        >>> from langmem_prod import PostgresStore
        >>> from langmem_prod.embedded import embedded_postgres
        >>> with embedded_postgres() as url, PostgresStore.from_conn_string(url) as store:
        ...     store.setup()
        ...     store.put(("users", "u1"), "prefs", {"theme": "dark", "score": 9})
        ...     store.get(("users", "u1"), "prefs").value["theme"]
        ...     [i.key for i in store.search(("users",), filter={"score": {"$gte": 5}})]
        'dark'
        ['prefs']

    Args:
        conn: a psycopg `Connection` or `ConnectionPool`; a pool lets the store reconnect.
            A URL is refused with a pointer to `from_conn_string`.
        schema: the PostgreSQL schema of the store's tables (created by `setup()`).
        index: LangGraph's `IndexConfig` (`dims`, `embed`, `fields`) for semantic
            search on pgvector; `distance_type` "cosine" (default), "l2" or
            "inner_product" scores as LangGraph's PostgresStore (`setup()` refuses a
            type other than the schema's index); `ann_index_config` may set HNSW
            `m`/`ef_construction`.
        ttl: LangGraph's `TTLConfig` (`default_ttl`, `refresh_on_read`,
            `sweep_interval_minutes`).
        track_access: "batched" (default) buffers access statistics and TTL refreshes
            and writes them every `flush_interval` seconds; "sync" writes them with the
            read; "off" keeps no statistics (TTL refreshes are still batched).
        max_value_bytes: the largest JSON encoding of a value accepted (default 1 MiB).
        start_sweeper: delete expired items in the background (default True).
        flush_interval: seconds between writes of buffered reads.
        retry: how transient connection failures are retried.
        clock: returns the current aware datetime (inject a fake one in tests).
        values: a `ValueTransform` applied to values at rest, e.g.
            `security.TenantEncryption` (encrypts the values of tenants that ask for it).
    """

    _runner: SyncRunner

    def _new_runner(self) -> None:
        if not isinstance(self.conn, Connection | ConnectionPool):
            raise ConfigurationError(
                "PostgresStore needs a psycopg Connection or ConnectionPool; for an "
                "AsyncConnection or AsyncConnectionPool use AsyncPostgresStore"
            )
        self._runner = SyncRunner(self.conn, self._schema, self.embeddings, self._retry)

    @classmethod
    @contextmanager
    def from_conn_string(
        cls,
        conn_string: str,
        *,
        pool_size: int = 5,
        pool_timeout: float = 30.0,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        **kwargs: Any,
    ) -> Iterator[Self]:
        """Open a connection pool on `conn_string` and yield a store using it.

        The pool and the store are closed on exit; other arguments go to the store.

        Args:
            conn_string: a postgresql:// URL or key=value connection string.
            pool_size: the most connections the pool opens; more callers queue.
            pool_timeout: seconds a call waits for a free connection before
                `BackendTimeoutError`.
            connect_timeout: seconds to reach the server (whole, at least 2) before
                `BackendUnavailableError`. A malformed string, an unknown database or
                role, or a refused password raise `ConfigurationError` at once.
            **kwargs: the store's arguments.
        """
        conninfo = check_connection(conn_string, connect_timeout)
        pool: ConnectionPool[Any] = ConnectionPool(
            conninfo,
            min_size=1,
            max_size=pool_size,
            timeout=pool_timeout,
            kwargs={"autocommit": True},
            open=False,
        )
        try:
            pool.open(wait=True, timeout=pool_timeout)
        except Exception as exc:
            pool.close()
            raise translate(exc, kwargs.get("schema", DEFAULT_SCHEMA)) from exc
        try:
            with cls(pool, **kwargs) as store:
                yield store
        finally:
            pool.close()

    def setup(self) -> None:
        """Create or upgrade the schema (idempotent, transactional, concurrency-safe)."""
        self._runner.run_in_transaction(lambda: setup_gen(self._schema, self._vector))

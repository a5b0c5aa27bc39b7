"""`PostgresChatMessageHistory`: a LangChain chat history on PostgreSQL (psycopg 3)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from psycopg import AsyncConnection, Connection
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from langmem_prod.codec import Codec
from langmem_prod.errors import ConfigurationError
from langmem_prod.history._base import ChatHistoryBase, HistoryLimiter, split_sources
from langmem_prod.history._messages import check_max_messages, check_ttl
from langmem_prod.history._pg import PgConversation, setup_gen, sweep_gen
from langmem_prod.history._shared import apg_pool, pg_pool
from langmem_prod.security.pii import Redactor
from langmem_prod.store._retry import RetryPolicy
from langmem_prod.store._runner import AsyncRunnerBase
from langmem_prod.store._worker import ThreadWorker
from langmem_prod.store.postgres._base import DEFAULT_SCHEMA
from langmem_prod.store.postgres._driver import AsyncRunner, SyncRunner
from langmem_prod.store.postgres._errors import HISTORY_SETUP

SyncSource = Connection[Any] | ConnectionPool[Any]
AsyncSource = AsyncConnection[Any] | AsyncConnectionPool[Any]

_ACCEPTED = "a psycopg Connection, ConnectionPool, AsyncConnection or AsyncConnectionPool"


class PostgresChatMessageHistory(ChatHistoryBase):
    """A conversation's messages in PostgreSQL, with native sync and async methods.

    Appends are one statement (one round trip, atomic, safe to retry); reads can take
    the last N messages or a page; `max_messages` bounds the conversation; `ttl`
    expires it `ttl` seconds after its last write. Call `setup()` once per database to
    create or upgrade its tables (versioned migrations, shared with `PostgresStore`).

    Example:
        >>> from langchain_core.messages import AIMessage, HumanMessage
        >>> from langmem_prod import PostgresChatMessageHistory
        >>> from langmem_prod.embedded import embedded_postgres
        >>> with embedded_postgres() as url:
        ...     history = PostgresChatMessageHistory("session-1", url, tenant_id="acme")
        ...     history.setup()
        ...     history.add_messages([HumanMessage("hi"), AIMessage("hello!")])
        ...     [m.content for m in history.get_messages(last=1)]
        ['hello!']

    Args:
        session_id: any non-empty string naming the conversation.
        connection: a psycopg `Connection` or `ConnectionPool` (sync methods), an
            `AsyncConnection` or `AsyncConnectionPool` (async methods), or a URL (both;
            histories on one URL share one pool per process and per event loop).
        async_connection: an async connection or pool, when `connection` is a sync one.
        tenant_id: the tenant owning the conversation (part of its identity).
        user_id: the user the conversation belongs to, stored with it.
        schema: the PostgreSQL schema of the tables.
        max_messages: keep only the newest N messages.
        ttl: seconds (or a timedelta) after the last write when the conversation expires.
        codec: transforms stored bytes (encryption plugs in here).
        redactor: redacts PII from messages (and saved state) before they are stored,
            e.g. `tenancy.tenant_redactor(tenant, secret)` for the tenant's policy.
        limiter: takes a token from `tenant_id`'s bucket before every read, write and
            clear (`RateLimitedError` when empty), e.g. `tenancy.TenantRateLimiter` for
            the limit of the tenant's plan; needs `tenant_id`.
        retry: how transient connection failures are retried.
        clock: returns the current aware datetime (inject a fake one in tests).
    """

    def __init__(
        self,
        session_id: str,
        connection: str | SyncSource | AsyncSource,
        *,
        async_connection: AsyncSource | None = None,
        tenant_id: str | None = None,
        user_id: str | None = None,
        schema: str = DEFAULT_SCHEMA,
        max_messages: int | None = None,
        ttl: float | timedelta | None = None,
        codec: Codec | None = None,
        redactor: Redactor | None = None,
        limiter: HistoryLimiter | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._init_common(
            session_id,
            tenant_id=tenant_id,
            user_id=user_id,
            codec=codec,
            clock=clock,
            retry=retry,
            redactor=redactor,
            limiter=limiter,
        )
        self._schema = schema
        self._conversation = PgConversation(
            schema,
            self.tenant_id,
            self.session_id,
            self.user_id,
            check_ttl(ttl),
            check_max_messages(max_messages),
        )
        self._url = connection if isinstance(connection, str) else None
        sync, asynchronous = split_sources(
            connection,
            async_connection,
            (Connection, ConnectionPool),
            (AsyncConnection, AsyncConnectionPool),
            _ACCEPTED,
        )
        if self._url is not None:
            sync = pg_pool(self._url)
        self._sync = (
            SyncRunner(sync, schema, None, self._retry, setup_hint=HISTORY_SETUP)
            if sync is not None
            else None
        )
        self._async = (
            AsyncRunner(asynchronous, schema, None, self._retry, setup_hint=HISTORY_SETUP)
            if asynchronous
            else None
        )

    async def _arunner(self) -> AsyncRunnerBase[Any] | None:
        if self._url is not None:
            pool = await apg_pool(self._url)
            if not isinstance(self._async, AsyncRunner) or self._async.source is not pool:
                self._async = AsyncRunner(
                    pool, self._schema, None, self._retry, setup_hint=HISTORY_SETUP
                )
        return self._async

    def setup(self) -> None:
        """Create or upgrade the history tables (idempotent, transactional, concurrency-safe)."""
        runner = self._sync
        if not isinstance(runner, SyncRunner):
            raise ConfigurationError("setup() needs a sync connection; use `await asetup()`")
        runner.run_in_transaction(lambda: setup_gen(self._schema))

    async def asetup(self) -> None:
        """Async `setup`."""
        runner = await self._arunner()
        if not isinstance(runner, AsyncRunner):
            raise ConfigurationError("asetup() needs an async connection; use setup()")
        await runner.run_in_transaction(lambda: setup_gen(self._schema))

    def sweep(self) -> int:
        """Delete every expired conversation of the schema; returns how many."""
        return self._run(sweep_gen(self._schema, self._clock()), limited=False)

    async def asweep(self) -> int:
        """Async `sweep`."""
        return await self._arun(sweep_gen(self._schema, self._clock()), limited=False)

    def start_sweeper(self, interval: float = 300.0) -> ThreadWorker:
        """Sweep the schema's expired conversations every `interval` seconds, in a thread.

        One sweeper per process is enough (it sweeps every conversation of the schema);
        stop it with `.stop()`.
        """
        if interval <= 0:
            raise ConfigurationError("interval must be a positive number of seconds")

        def sweep_round() -> float:
            self.sweep()
            return interval

        worker = ThreadWorker(
            sweep_round, name=f"langmem-history-sweeper-{self._schema}", retry_after=interval
        )
        worker.start()
        return worker

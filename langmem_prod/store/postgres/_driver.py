"""Drive the Postgres generators against psycopg: one sync runner, one async twin.

Rules:
- an `Execute` takes a connection (from the pool, or the single connection under a
  lock), runs its statements in one round trip, and gives the connection back; no
  connection is held while embedding;
- every `Execute` is safe to repeat, so transient failures are retried with backoff;
  `setup()` runs as one transaction and is retried whole;
- errors leave through `translate`, so callers see only langmem_prod's exceptions;
- after any failure, the connection is brought back in line with the server (`_recover`:
  psycopg's prepared statements that an aborted pipeline never created are forgotten; a
  connection left busy is closed) before it goes back to the pool or the next caller;
- statements that only set the tenant for row-level security are skipped (answered with
  no rows) once the runner has seen that its role bypasses RLS (the tables' owner, a
  superuser, BYPASSRLS): they would cost a pipeline for nothing. It asks once, on the
  first such effect, and keeps sending them while the schema is not set up;
- the twins differ only in `await`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager, suppress
from typing import Any, TypeVar

from langchain_core.embeddings import Embeddings
from psycopg import AsyncConnection, Connection, Cursor
from psycopg.pq import ExecStatus
from psycopg.rows import tuple_row
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from langmem_prod.errors import ConfigurationError
from langmem_prod.store._retry import RetryPolicy
from langmem_prod.store._runner import AsyncRunnerBase, SyncRunnerBase
from langmem_prod.store.postgres._effects import Execute
from langmem_prod.store.postgres._errors import STORE_SETUP, SetupHint, translate
from langmem_prod.store.postgres._recover import arecover, recover
from langmem_prod.store.postgres._sql import Statement

T = TypeVar("T")
Rows = list[list[tuple[Any, ...]]]
logger = logging.getLogger("langmem_prod.store.postgres")


def _has_rows(cursor: Any) -> bool:
    # Cheaper than `cursor.description`, which builds a Column object per column.
    result = cursor.pgresult
    return result is not None and result.status == ExecStatus.TUPLES_OK


def _rows(cursor: Cursor[Any]) -> list[tuple[Any, ...]]:
    return cursor.fetchall() if _has_rows(cursor) else []


class SyncRunner(SyncRunnerBase[Execute]):
    """Runs generators on a psycopg `Connection` or `ConnectionPool`."""

    backend = "PostgreSQL"

    def __init__(
        self,
        source: Connection[Any] | ConnectionPool[Any],
        schema: str,
        embeddings: Embeddings | None,
        retry: RetryPolicy,
        *,
        setup_hint: SetupHint = STORE_SETUP,
    ) -> None:
        super().__init__(embeddings, retry)
        self.schema = schema
        self.source = source
        self.setup_hint = setup_hint
        self.bypasses_rls: bool | None = None
        self._lock = threading.Lock()

    @contextmanager
    def connection(self) -> Iterator[Connection[Any]]:
        """Take a connection for one round trip (or one transaction)."""
        if isinstance(self.source, ConnectionPool):
            with self.source.connection() as conn:
                yield conn
        else:
            with self._lock:
                yield self.source

    def _send_once(self, effect: Execute) -> Rows:
        # The hot path: the pool's getconn/putconn without its `connection()` context
        # manager (half the cost of a checkout), or the lock.
        source = self.source
        if type(source) is ConnectionPool:
            conn = source.getconn()
            try:
                return self._execute(conn, effect)
            finally:
                source.putconn(conn)
        if isinstance(source, ConnectionPool):
            with source.connection() as conn:
                return self._execute(conn, effect)
        with self._lock:
            return self._execute(source, effect)

    def _execute(self, conn: Connection[Any], effect: Execute) -> Rows:
        try:
            return self._execute_on(conn, effect)
        except BaseException:
            recover(conn, pipelined=len(effect.statements) > 1)
            raise

    def _execute_on(self, conn: Connection[Any], effect: Execute) -> Rows:
        if not effect.tenant_settings:
            return _run_statements(conn, effect.statements)
        if self.bypasses_rls is None:
            self.bypasses_rls = _bypass(_run_statements(conn, (_bypass_check(self.schema),)))
        if not self.bypasses_rls:
            return _run_statements(conn, effect.statements)
        return _answer_skipped(effect, _run_statements(conn, _without_settings(effect)))

    def run_in_transaction(self, make_gen: Callable[[], Generator[Execute, Any, T]]) -> T:
        """Drive a fresh `make_gen()` on one connection in one transaction, retried whole."""
        return self._retrying(lambda: self._transaction_once(make_gen()))

    def _transaction_once(self, gen: Generator[Execute, Any, T]) -> T:
        with self.connection() as conn:
            try:
                with conn.transaction():
                    try:
                        effect = next(gen)
                        while True:
                            effect = gen.send(_run_statements(conn, effect.statements))
                    except StopIteration as stop:
                        return stop.value  # type: ignore[no-any-return]
            except BaseException:
                recover(conn)
                raise

    def _discard_broken(self) -> None:
        """After a connection failure, drop the pool's dead idle connections."""
        if isinstance(self.source, ConnectionPool):
            with suppress(Exception):
                self.source.check()

    def _closed(self) -> bool:
        return isinstance(self.source, Connection) and self.source.closed

    def translate(self, exc: BaseException) -> BaseException:
        """The langmem_prod error for a psycopg error."""
        return translate(exc, self.schema, self.setup_hint)


# NULL (not set up yet: ask again later), else whether RLS leaves this role alone.
_BYPASS_CHECK = "SELECT NOT row_security_active(to_regclass(format('%%I.tenant_roles', %s::text)))"


def _bypass_check(schema: str) -> Statement:
    return Statement(_BYPASS_CHECK, (schema,))


def _bypass(rows: Rows) -> bool | None:
    value = rows[0][0][0] if rows and rows[0] else None
    return None if value is None else bool(value)


def _without_settings(effect: Execute) -> tuple[Statement, ...]:
    skip = set(effect.tenant_settings)
    return tuple(s for n, s in enumerate(effect.statements) if n not in skip)


def _answer_skipped(effect: Execute, rows: Rows) -> Rows:
    """The answers of an effect run without its tenant settings, in the effect's shape."""
    answers = iter(rows)
    skip = set(effect.tenant_settings)
    return [[] if n in skip else next(answers) for n in range(len(effect.statements))]


def _run_statements(conn: Connection[Any], statements: Sequence[Statement]) -> Rows:
    if conn.autocommit:
        return _run_in(conn, statements)
    with conn.transaction():
        return _run_in(conn, statements)


def _run_in(conn: Connection[Any], statements: Sequence[Statement]) -> Rows:
    if len(statements) == 1:
        cur = conn.cursor(row_factory=tuple_row)
        cur.execute(statements[0].sql, statements[0].params, prepare=statements[0].prepare)
        return [_rows(cur)]
    cursors = []
    with conn.pipeline():
        for statement in statements:
            cur = conn.cursor(row_factory=tuple_row)
            cur.execute(statement.sql, statement.params, prepare=statement.prepare)
            cursors.append(cur)
    return [_rows(cur) for cur in cursors]


class AsyncRunner(AsyncRunnerBase[Execute]):
    """Runs generators on a psycopg `AsyncConnection` or `AsyncConnectionPool`."""

    backend = "PostgreSQL"

    def __init__(
        self,
        source: AsyncConnection[Any] | AsyncConnectionPool[Any],
        schema: str,
        embeddings: Embeddings | None,
        retry: RetryPolicy,
        *,
        setup_hint: SetupHint = STORE_SETUP,
    ) -> None:
        super().__init__(embeddings, retry)
        self.schema = schema
        self.source = source
        self.setup_hint = setup_hint
        self.bypasses_rls: bool | None = None
        self._lock: asyncio.Lock | None = None

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection[Any]]:
        """Take a connection for one round trip (or one transaction)."""
        if isinstance(self.source, AsyncConnectionPool):
            async with self.source.connection() as conn:
                yield conn
        else:
            self._lock = self._lock or asyncio.Lock()
            async with self._lock:
                yield self.source

    async def _send_once(self, effect: Execute) -> Rows:
        # The hot path: the pool's getconn/putconn without its `connection()` context
        # manager, or the lock.
        source = self.source
        if type(source) is AsyncConnectionPool:
            conn = await source.getconn()
            try:
                return await self._execute(conn, effect)
            finally:
                await source.putconn(conn)
        if isinstance(source, AsyncConnectionPool):
            async with source.connection() as conn:
                return await self._execute(conn, effect)
        self._lock = self._lock or asyncio.Lock()
        async with self._lock:
            return await self._execute(source, effect)

    async def _execute(self, conn: AsyncConnection[Any], effect: Execute) -> Rows:
        try:
            return await self._execute_on(conn, effect)
        except BaseException:
            await arecover(conn, pipelined=len(effect.statements) > 1)
            raise

    async def _execute_on(self, conn: AsyncConnection[Any], effect: Execute) -> Rows:
        if not effect.tenant_settings:
            return await _arun_statements(conn, effect.statements)
        if self.bypasses_rls is None:
            check = (_bypass_check(self.schema),)
            self.bypasses_rls = _bypass(await _arun_statements(conn, check))
        if not self.bypasses_rls:
            return await _arun_statements(conn, effect.statements)
        return _answer_skipped(effect, await _arun_statements(conn, _without_settings(effect)))

    async def run_in_transaction(self, make_gen: Callable[[], Generator[Execute, Any, T]]) -> T:
        """Drive a fresh `make_gen()` on one connection in one transaction, retried whole."""
        return await self._retrying(lambda: self._transaction_once(make_gen()))

    async def _transaction_once(self, gen: Generator[Execute, Any, T]) -> T:
        async with self.connection() as conn:
            try:
                async with conn.transaction():
                    try:
                        effect = next(gen)
                        while True:
                            effect = gen.send(await _arun_statements(conn, effect.statements))
                    except StopIteration as stop:
                        return stop.value  # type: ignore[no-any-return]
            except BaseException:
                await arecover(conn)
                raise

    async def _discard_broken(self) -> None:
        """After a connection failure, drop the pool's dead idle connections."""
        if isinstance(self.source, AsyncConnectionPool):
            with suppress(Exception):
                await self.source.check()

    def _closed(self) -> bool:
        return isinstance(self.source, AsyncConnection) and self.source.closed

    def translate(self, exc: BaseException) -> BaseException:
        """The langmem_prod error for a psycopg error."""
        return translate(exc, self.schema, self.setup_hint, asynchronous=True)


async def _arun_statements(conn: AsyncConnection[Any], statements: Sequence[Statement]) -> Rows:
    if conn.autocommit:
        return await _arun_in(conn, statements)
    async with conn.transaction():
        return await _arun_in(conn, statements)


async def _arun_in(conn: AsyncConnection[Any], statements: Sequence[Statement]) -> Rows:
    if len(statements) == 1:
        cur = conn.cursor(row_factory=tuple_row)
        await cur.execute(statements[0].sql, statements[0].params, prepare=statements[0].prepare)
        return [await cur.fetchall() if _has_rows(cur) else []]
    cursors = []
    async with conn.pipeline():
        for statement in statements:
            cur = conn.cursor(row_factory=tuple_row)
            await cur.execute(statement.sql, statement.params, prepare=statement.prepare)
            cursors.append(cur)
    return [await cur.fetchall() if _has_rows(cur) else [] for cur in cursors]


def runner_for(
    conn: Any,
    schema: str,
    retry: RetryPolicy | None,
    *,
    owner: str,
    setup_hint: SetupHint = STORE_SETUP,
) -> SyncRunner | AsyncRunner:
    """A sync runner on a sync psycopg connection or pool, an async one on an async one.

    `owner` names what needs the connection, for the error on anything else;
    `setup_hint` what a missing table belongs to, for the missing-setup error.
    """
    policy = retry or RetryPolicy()
    if isinstance(conn, Connection | ConnectionPool):
        return SyncRunner(conn, schema, None, policy, setup_hint=setup_hint)
    if isinstance(conn, AsyncConnection | AsyncConnectionPool):
        return AsyncRunner(conn, schema, None, policy, setup_hint=setup_hint)
    if isinstance(conn, str):
        raise ConfigurationError(
            f"{owner} takes a psycopg connection or pool, not a URL; open one on the URL, "
            "e.g. `ConnectionPool(url, kwargs={'autocommit': True}, open=True)`"
        )
    raise ConfigurationError(f"{owner} needs a psycopg connection or pool (sync or async)")

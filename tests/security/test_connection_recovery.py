"""A refused batch never breaks the next caller's connection (issue 10, point 2).

One tenant ("evil") has its batches refused in every way the server refuses them: over
its quota, bad input only the server catches, a statement timeout, a serialization
failure, a lost connection. Then another tenant ("good") runs ordinary batches on the
same pool (1 or 8 connections, sync and async, store and chat history): every one must
succeed, and usage must stay exact. Both run as an ordinary NOSUPERUSER app role, which
row-level security applies to (so every batch also sets its tenant).

The refusals are timed for psycopg's prepared-statement bug: first every connection runs
the good tenant's batch five times, so the refused batch is the sixth run of its last
statement on each connection: the run on which psycopg prepares it, here inside a
pipeline the server has aborted, so the server skips the Parse that psycopg recorded.
Without `store/postgres/_recover.py` the store tests fail with `prepared statement
"_pg3_N" does not exist` (no chat-history flow runs a statement after one that can fail,
so those guard the connection-state rules: timeouts, conflicts, lost connections).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from langchain_core.messages import HumanMessage
from langgraph.store.base import PutOp
from psycopg import sql
from psycopg.pq import PipelineStatus, TransactionStatus
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from langmem_prod import AsyncPostgresStore, PostgresChatMessageHistory, PostgresStore
from langmem_prod.errors import (
    BackendError,
    BackendTimeoutError,
    BackendUnavailableError,
    QuotaExceededError,
)
from langmem_prod.store._retry import RetryPolicy
from langmem_prod.store.postgres._driver import AsyncRunner, SyncRunner
from langmem_prod.store.postgres._effects import Execute
from langmem_prod.store.postgres._recover import (
    Repair,
    _prepared_names,
    arecover,
    recover,
    repair_for,
)
from langmem_prod.store.postgres._sql import Statement
from langmem_prod.tenancy import PostgresTenantRegistry, TenantStore
from tests.conftest import PgServer

pytestmark = pytest.mark.postgres

NS = ("notes",)
WARM_RUNS = 5  # psycopg's default prepare_threshold: the sixth run prepares
TIMEOUT_MS = 750
# (what the tenants use, how the evil tenant's batches are refused). Chat histories have
# no quota, and reject every bad input before it reaches the server.
KINDS = [
    ("store", "quota"),
    ("store", "bad_input"),
    ("store", "timeout"),
    ("store", "serialization"),
    ("store", "lost_connection"),
    ("history", "timeout"),
    ("history", "serialization"),
    ("history", "lost_connection"),
]
_POOL_OPTIONS = {
    "timeout": f"-c statement_timeout={TIMEOUT_MS}",
    "serialization": "-c default_transaction_isolation=serializable",
}


def _admin(pg: PgServer) -> psycopg.Connection[Any]:
    return psycopg.connect(pg.url, autocommit=True)


@pytest.fixture
def app_role(pg: PgServer, schema: str) -> Iterator[str]:
    """The schema set up by its owner, and an app role (LOGIN, no superuser, no BYPASSRLS)."""
    with ConnectionPool(pg.url, min_size=1, max_size=2, kwargs={"autocommit": True}) as pool:
        PostgresTenantRegistry(pool, schema=schema).setup()
        PostgresChatMessageHistory("setup", pool, schema=schema).setup()
        with PostgresStore(pool, schema=schema, start_sweeper=False) as store:
            store.setup()
    role = f"lm_conn_{uuid.uuid4().hex[:10]}"
    ident = sql.Identifier
    with _admin(pg) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS").format(ident(role)))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(ident(schema), ident(role)))
        for table in ("items", "namespaces", "chat_sessions", "chat_messages"):
            conn.execute(
                sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON {}.{} TO {}").format(
                    ident(schema), ident(table), ident(role)
                )
            )
    yield role
    with _admin(pg) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,)
        )
        conn.execute(sql.SQL("DROP OWNED BY {}").format(ident(role)))
        conn.execute(sql.SQL("DROP ROLE {}").format(ident(role)))


@dataclass
class World:
    """Two tenants of one app-role pool, with their stores and histories."""

    pg: PgServer
    schema: str
    role: str
    flavour: str
    size: int
    registry: PostgresTenantRegistry
    evil: TenantStore
    good: TenantStore
    evil_history: PostgresChatMessageHistory
    good_history: PostgresChatMessageHistory
    threads: ThreadPoolExecutor

    async def call(self, target: Any, method: str, *args: Any, **kwargs: Any) -> Any:
        """`target.method(...)` in a thread, or `target.amethod(...)`, by flavour."""
        if self.flavour == "async":
            return await getattr(target, f"a{method}")(*args, **kwargs)
        call = functools.partial(getattr(target, method), *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self.threads, call)

    async def ordinary(self, surface: str, n: int) -> None:
        """The good tenant's batch number `n`: one round trip, on the next connection."""
        if surface == "store":
            ops = [PutOp(NS, f"k{n}", {"n": n}), PutOp(NS, f"k{n - 1}", None)]
            assert await self.call(self.good, "batch", ops) == [None, None]
        else:
            await self.call(self.good_history, "add_messages", [HumanMessage(f"m{n}")])

    async def refused(self, surface: str, kind: str, n: int) -> None:
        """The evil tenant's batch number `n`, shaped like the good tenant's."""
        if surface == "history":
            await self.call(self.evil_history, "add_messages", [HumanMessage(f"e{n}")])
            return
        key = f"e{n}"
        if kind == "bad_input":  # a primary key over btree's 2704-byte row limit
            key = base64.b64encode(os.urandom(4000)).decode()
        await self.call(self.evil, "batch", [PutOp(NS, key, {"n": n}), PutOp(NS, "gone", None)])

    def lock_statement(self, surface: str) -> sql.Composed:
        """Touch the row every evil write updates (its usage, or its conversation)."""
        if surface == "store":
            text = "UPDATE {}.tenant_usage SET items = items WHERE tenant_id = 'evil'"
        else:
            text = "UPDATE {}.chat_sessions SET updated_at = updated_at WHERE tenant_id = 'evil'"
        return sql.SQL(text).format(sql.Identifier(self.schema))

    def terminate_all(self) -> int:
        """Kill every backend of the app role (the pool's idle connections included)."""
        with _admin(self.pg) as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                (self.role,),
            ).fetchall()
        return len(rows)

    def items(self, tenant: str) -> int:
        with _admin(self.pg) as conn:
            query = sql.SQL("SELECT count(*) FROM {}.items WHERE tenant = %s")
            row = conn.execute(query.format(sql.Identifier(self.schema)), (tenant,)).fetchone()
        assert row is not None
        return int(row[0])

    def messages(self, tenant: str) -> int:
        with _admin(self.pg) as conn:
            query = sql.SQL("SELECT count(*) FROM {}.chat_messages WHERE tenant_id = %s")
            row = conn.execute(query.format(sql.Identifier(self.schema)), (tenant,)).fetchone()
        assert row is not None
        return int(row[0])


@pytest.fixture
async def world(
    pg: PgServer, schema: str, app_role: str, flavour: str, request: pytest.FixtureRequest
) -> AsyncIterator[World]:
    size, kind = request.param
    url = psycopg.conninfo.make_conninfo(pg.url, user=app_role)
    kwargs: dict[str, Any] = {"autocommit": True}
    if kind in _POOL_OPTIONS:
        kwargs["options"] = _POOL_OPTIONS[kind]
    # min_size = max_size: every connection is open, and the pool hands them out in turn.
    pool: Any
    if flavour == "async":
        pool = AsyncConnectionPool(url, min_size=size, max_size=size, kwargs=kwargs, open=False)
        await pool.open(wait=True)
        store: Any = AsyncPostgresStore(
            pool, schema=schema, start_sweeper=False, track_access="off"
        )
    else:
        pool = ConnectionPool(url, min_size=size, max_size=size, kwargs=kwargs, open=False)
        pool.open(wait=True)
        store = PostgresStore(pool, schema=schema, start_sweeper=False, track_access="off")
    owner = ConnectionPool(pg.url, min_size=1, max_size=2, kwargs={"autocommit": True}, open=False)
    owner.open(wait=True)
    registry = PostgresTenantRegistry(owner, schema=schema)
    registry.create(  # quotas and failures, not rates, are under test
        "evil", max_items=1 if kind == "quota" else None, rate_per_second=None
    )
    registry.create("good", max_items=10, rate_per_second=None)

    def history(tenant: str) -> PostgresChatMessageHistory:
        return PostgresChatMessageHistory(f"s-{tenant}", pool, tenant_id=tenant, schema=schema)

    made = World(
        pg,
        schema,
        app_role,
        flavour,
        size,
        registry,
        TenantStore(store, registry, "evil", user_id="mallory"),
        TenantStore(store, registry, "good", user_id="alice"),
        history("evil"),
        history("good"),
        ThreadPoolExecutor(max_workers=size),
    )
    try:
        yield made
    finally:
        made.threads.shutdown()
        if flavour == "async":
            await store.aclose()
            await pool.close()
        else:
            store.close()
            pool.close()
        owner.close()


def _blocked(admin: psycopg.Connection[Any], role: str) -> list[int]:
    """The backends of `role` waiting for a lock."""
    rows = admin.execute(
        "SELECT pid FROM pg_stat_activity WHERE usename = %s AND wait_event_type = 'Lock'",
        (role,),
    ).fetchall()
    return [row[0] for row in rows]


async def _until(
    done: Callable[[], bool], batches: list[asyncio.Future[Any]], *, may_end: bool = False
) -> None:
    """Wait until `done()`; none of `batches` may finish meanwhile, unless `may_end`."""
    deadline = time.monotonic() + 30
    while not done():
        assert time.monotonic() < deadline, "the batches never blocked"
        if not may_end:
            assert not any(b.done() for b in batches), [b.exception() for b in batches]
        await asyncio.sleep(0.02)


async def _refuse_in_turn(world: World, surface: str, kind: str) -> None:
    """One refused batch per connection, one after the other (the pool takes turns)."""
    expected = QuotaExceededError if kind == "quota" else BackendError
    for n in range(world.size):
        with pytest.raises(expected) as info:
            await world.refused(surface, kind, n)
        if kind == "bad_input":
            assert "index row size" in str(info.value)


async def _refuse_all_at_once(world: World, surface: str, kind: str) -> list[Any]:
    """Every connection runs a refused batch at once, blocked by the admin's row lock.

    Then the lock's transaction times them out (timeout), commits under them so their
    serializable transactions conflict (serialization), or kills their backends and goes
    away (lost_connection). Returns each batch's outcome (None or its exception).
    """
    with _admin(world.pg) as locker, _admin(world.pg) as watcher:
        locker.execute("BEGIN")
        locker.execute(world.lock_statement(surface))
        batches = [
            asyncio.ensure_future(world.refused(surface, kind, n)) for n in range(world.size)
        ]
        # A slow machine may see the first batches time out before the last ones block.
        await _until(
            lambda: (
                len(_blocked(watcher, world.role)) + sum(b.done() for b in batches) == world.size
            ),
            batches,
            may_end=kind == "timeout",
        )
        if kind == "timeout":
            outcomes = await asyncio.gather(*batches, return_exceptions=True)
            locker.execute("ROLLBACK")
            return outcomes
        if kind == "serialization":
            locker.execute("COMMIT")
        else:
            query = "SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid"
            watcher.execute(query, (_blocked(watcher, world.role),))
            locker.execute("ROLLBACK")
        return await asyncio.gather(*batches, return_exceptions=True)


@pytest.mark.parametrize(
    ("world", "surface", "kind"),
    [((size, kind), surface, kind) for size in (1, 8) for surface, kind in KINDS],
    indirect=["world"],
    ids=[f"{surface}-{kind}-pool{size}" for size in (1, 8) for surface, kind in KINDS],
)
async def test_refused_batches_never_break_the_next_tenant(
    world: World, surface: str, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="langmem_prod")
    await world.call(world.evil, "put", NS, "seed", {"v": 0})  # evil's one item
    if surface == "history":
        await world.call(world.evil_history, "add_messages", [HumanMessage("seed")])
    n = 0
    for n in range(WARM_RUNS * world.size):  # five runs of the batch on every connection
        await world.ordinary(surface, n)

    if kind in ("quota", "bad_input"):
        await _refuse_in_turn(world, surface, kind)
        written = 0
    else:
        outcomes = await _refuse_all_at_once(world, surface, kind)
        failures = [o for o in outcomes if o is not None]
        if kind == "timeout":
            assert all(isinstance(o, BackendTimeoutError) for o in outcomes), outcomes
        elif kind == "serialization":  # retried: some may give up after their attempts
            assert all(isinstance(o, BackendUnavailableError) for o in failures), failures
            assert "could not serialize access" in caplog.text
        else:  # retried on a new connection
            assert failures == [], failures
            assert "retrying after a transient PostgreSQL error" in caplog.text
        written = len(outcomes) - len(failures)
    if kind == "lost_connection":  # and between batches: every idle connection dies
        assert world.terminate_all() >= 1

    first = n + 1
    for n in range(first, first + 2 * world.size):  # every later batch succeeds
        await world.ordinary(surface, n)
    stored = 1  # evil's seed
    if surface == "store":
        assert [i.key for i in await world.call(world.good, "search", NS)] == [f"k{n}"]
        assert world.registry.usage("good")["items"] == world.items("good") == 1
        stored += written
    else:
        messages = await world.call(world.good_history, "get_messages")
        assert [m.content for m in messages] == [f"m{i}" for i in range(n + 1)]
        assert world.messages("evil") == 1 + written  # retried appends land exactly once
    assert world.registry.usage("evil")["items"] == world.items("evil") == stored
    assert (await world.call(world.evil, "get", NS, "seed")).value == {"v": 0}
    assert "does not exist" not in caplog.text


async def test_a_cancelled_batch_leaves_the_pool_clean(
    pg: PgServer, schema: str, app_role: str
) -> None:
    """An async batch cancelled while the server runs it (here: waits on a lock)."""
    url = psycopg.conninfo.make_conninfo(pg.url, user=app_role)
    async with (
        AsyncConnectionPool(url, min_size=1, max_size=1, kwargs={"autocommit": True}) as pool,
        AsyncPostgresStore(pool, schema=schema, start_sweeper=False, track_access="off") as store,
    ):
        store_ns = ("tenants", "evil", "notes")
        for n in range(WARM_RUNS):
            await store.abatch([PutOp(store_ns, f"k{n}", {"n": n}), PutOp(store_ns, "x", None)])
        with _admin(pg) as locker, _admin(pg) as watcher:
            locker.execute("BEGIN")
            locker.execute(
                sql.SQL("LOCK TABLE {}.items IN EXCLUSIVE MODE").format(sql.Identifier(schema))
            )
            batch = asyncio.ensure_future(
                store.abatch([PutOp(store_ns, "late", {"n": 0}), PutOp(store_ns, "x", None)])
            )
            await _until(lambda: bool(_blocked(watcher, app_role)), [batch])
            batch.cancel()
            with pytest.raises(asyncio.CancelledError):
                await batch
            locker.execute("ROLLBACK")
        for n in range(2 * WARM_RUNS):
            await store.abatch([PutOp(store_ns, f"k{n}", {"n": n}), PutOp(store_ns, "x", None)])
        assert await store.aget(store_ns, "late") is None


# A statement the server refuses (division by zero), and one that follows it.
_FAILING = Statement("SELECT 1 / %s::int", (0,))
_PASSING = Statement("SELECT 1 / %s::int", (1,))
_FOLLOWER = Statement("SELECT %s::text || 'after'", ("x",))


@pytest.mark.parametrize("autocommit", [True, False])
async def test_a_single_connection_is_repaired_in_place(
    pg: PgServer, flavour: str, autocommit: bool
) -> None:
    """Raw statements through the runner on one connection (no pool to replace it)."""
    retry = RetryPolicy(attempts=1)
    if flavour == "async":
        aconn = await psycopg.AsyncConnection.connect(pg.url, autocommit=autocommit)
        arunner = AsyncRunner(aconn, "public", None, retry)
        send: Callable[[Execute], Awaitable[Any]] = arunner._send
        conn: Any = aconn
    else:
        conn = psycopg.connect(pg.url, autocommit=autocommit)
        runner = SyncRunner(conn, "public", None, retry)
        send = functools.partial(asyncio.to_thread, runner._send)
    try:
        for _ in range(WARM_RUNS):
            assert await send(Execute((_PASSING, _FOLLOWER))) == [[(1,)], [("xafter",)]]
        with pytest.raises(BackendError, match="division by zero"):
            await send(Execute((_FAILING, _FOLLOWER)))
        for _ in range(2):
            assert await send(Execute((_PASSING, _FOLLOWER))) == [[(1,)], [("xafter",)]]
        assert not conn.closed
    finally:
        if flavour == "async":
            await conn.close()
        else:
            conn.close()


def test_psycopg_keeps_names_an_aborted_pipeline_never_prepared(pg: PgServer) -> None:
    """The psycopg bug, in plain psycopg, and the private state `_recover` relies on.

    If the first assertion fails, psycopg fixed the bug: `_recover` may be unneeded. If
    `_prepared_names` fails, psycopg changed its private state: update `_recover`.
    """
    with psycopg.connect(pg.url, autocommit=True) as conn:
        for _ in range(WARM_RUNS):
            with conn.pipeline():
                conn.execute(_PASSING.sql, _PASSING.params)
                conn.execute(_FOLLOWER.sql, _FOLLOWER.params)
        # The sixth run of the follower, in a pipeline the failing statement aborted.
        with pytest.raises(psycopg.errors.DivisionByZero), conn.pipeline():
            conn.execute(_FAILING.sql, _FAILING.params)
            conn.execute(_FOLLOWER.sql, _FOLLOWER.params)

        def server() -> set[str]:
            return {r[0] for r in conn.execute("SELECT name FROM pg_prepared_statements")}

        held = {name.decode() for name in _prepared_names(conn).values()}
        assert held - server(), "psycopg no longer records statements it never prepared"
        with pytest.raises(psycopg.errors.InvalidSqlStatementName):
            conn.execute(_FOLLOWER.sql, _FOLLOWER.params)
        recover(conn)
        assert {name.decode() for name in _prepared_names(conn).values()} <= server()
        assert conn.execute(_FOLLOWER.sql, _FOLLOWER.params).fetchone() == ("xafter",)
        for _ in range(WARM_RUNS + 1):  # and psycopg prepares it again
            conn.execute(_FOLLOWER.sql, _FOLLOWER.params)
        assert len(server()) == len(_prepared_names(conn)) == 2


async def test_a_connection_left_busy_is_closed(pg: PgServer, flavour: str) -> None:
    """A connection with a statement still running is closed (a pool then replaces it)."""
    if flavour == "async":
        async with AsyncConnectionPool(pg.url, min_size=1, max_size=1) as apool:
            async with apool.connection() as aconn:
                aconn.pgconn.send_query(b"SELECT pg_sleep(0.2)")
                assert aconn.info.transaction_status == TransactionStatus.ACTIVE
                await arecover(aconn)
                assert aconn.closed
            async with apool.connection() as aconn:
                assert await (await aconn.execute("SELECT 1")).fetchone() == (1,)
        return
    with ConnectionPool(pg.url, min_size=1, max_size=1) as pool:
        with pool.connection() as conn:
            conn.pgconn.send_query(b"SELECT pg_sleep(0.2)")
            assert conn.info.transaction_status == TransactionStatus.ACTIVE
            recover(conn)
            assert conn.closed
        with pool.connection() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)


_IDLE, _BUSY = TransactionStatus.IDLE, TransactionStatus.ACTIVE
_IN, _FAILED = TransactionStatus.INTRANS, TransactionStatus.INERROR
_OFF, _ON = PipelineStatus.OFF, PipelineStatus.ON


@pytest.mark.parametrize(
    ("closed", "autocommit", "transaction", "pipeline", "stale", "repair"),
    [
        (False, True, _IDLE, _OFF, True, Repair.FORGET_MISSING),
        (False, True, _IDLE, _OFF, False, Repair.NOTHING),  # no pipeline, or nothing prepared
        (False, False, _IDLE, _OFF, True, Repair.NOTHING),  # the rollback deallocated all
        (False, True, _IN, _OFF, True, Repair.NOTHING),  # the caller's transaction
        (False, True, _FAILED, _OFF, True, Repair.NOTHING),  # rolled back by its owner
        (False, True, _BUSY, _OFF, False, Repair.CLOSE),
        (False, False, _IDLE, _ON, False, Repair.CLOSE),
        (False, True, _IDLE, PipelineStatus.ABORTED, True, Repair.CLOSE),
        (True, True, _IDLE, _ON, True, Repair.NOTHING),  # closed: the pool discards it
    ],
)
def test_repairs_by_connection_state(
    closed: bool,
    autocommit: bool,
    transaction: TransactionStatus,
    pipeline: PipelineStatus,
    stale: bool,
    repair: Repair,
) -> None:
    assert (
        repair_for(
            closed=closed,
            autocommit=autocommit,
            transaction=transaction,
            pipeline=pipeline,
            may_be_stale=stale,
        )
        is repair
    )

"""Pytest plugin swapping our stores in for LangGraph's in LangGraph's own store tests.

Loaded by `tests/langgraph_suites/_run.py` in a pytest subprocess whose root is a suite laid
out by `_sources.py`. Rules:
- `LANGMEM_SUITE_STORE` names the store under test (postgres, async_postgres, redis,
  async_redis); `LANGMEM_SUITE_PG_URL` / `LANGMEM_SUITE_REDIS_URL` (and
  `LANGMEM_SUITE_REDIS_CLUSTER=1`) name the servers;
- the names `InMemoryStore`, `PostgresStore`, `AsyncPostgresStore`, `SqliteStore` and
  `AsyncSqliteStore` in the test modules become our store: `from_conn_string(conn, ...)`
  opens it in a schema / key prefix of its own per connection string (":memory:" is always
  a fresh one), and calling the class (InMemoryStore's way) makes a set-up store;
- tests deselected by `DESELECTED` (each with its reason) are reported, never hidden;
- outcomes are written as JSON to `LANGMEM_SUITE_REPORT`.

This module imports nothing from the `tests` package: the suites bring their own.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import json
import os
import sys
import types
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar
from unittest import mock

import psycopg
import pytest
import redis
import redis.asyncio
from langgraph.store.base import IndexConfig
from psycopg import sql
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from langmem_prod import AsyncPostgresStore, AsyncRedisStore, PostgresStore, RedisStore
from langmem_prod.errors import FeatureUnavailableError
from langmem_prod.store.redis._driver import close_client

KIND = os.environ.get("LANGMEM_SUITE_STORE", "postgres")
PG_URL = os.environ.get("LANGMEM_SUITE_PG_URL", "")
REDIS_URL = os.environ.get("LANGMEM_SUITE_REDIS_URL", "")
CLUSTER = os.environ.get("LANGMEM_SUITE_REDIS_CLUSTER") == "1"
IS_ASYNC = KIND.startswith("async_")
IS_PG = KIND.endswith("postgres")
SWAPPED = (
    "InMemoryStore",
    "PostgresStore",
    "AsyncPostgresStore",
    "SqliteStore",
    "AsyncSqliteStore",
)

_LG_INTERNAL = "tests a LangGraph backend's private helpers or SQL, not the BaseStore contract"
_LG_TABLES = "reads or writes LangGraph's own tables through store._cursor()"
_LG_CONFIG = "checks LangGraph's connection/pool configuration, not the BaseStore contract"
_LG_BATCHER = "tests LangGraph's AsyncBatchedBaseStore or batch dedupe helper, not a store"
_LG_MIGRATIONS = "checks the SQL text of LangGraph's own migrations (MIGRATIONS)"
_OMIT_EXPIRED = (
    "expires rows by editing LangGraph's `store` table through store._cursor() and tests "
    "its `omit_expired` switch; our stores never return expired items (tests/contract/"
    "test_ttl.py), which is LangGraph's omit_expired=True"
)
_SYNC_ON_ASYNC = (
    "a sync test on an async store: its sync methods need the store's running loop "
    "(LangGraph's async stores alike); the async tests of this file run instead"
)

# (suite, file, test function) -> why the test does not apply to our stores.
DESELECTED: dict[tuple[str, str, str], str] = {
    ("memory", "test_store.py", "test_async_batch_store_resilience"): _LG_BATCHER,
    (
        "memory",
        "test_store.py",
        "test_dedupe_ops_maps_repeated_reads_and_puts_to_one_op",
    ): _LG_BATCHER,
    ("memory", "test_store.py", "test_async_batch_store"): _LG_BATCHER,
    ("memory", "test_store.py", "test_async_batch_store_handles_cancellation"): _LG_BATCHER,
    ("memory", "test_store.py", "test_async_batch_store_deduplication"): _LG_BATCHER,
    ("memory", "test_store.py", "test_async_batched_vector_search_concurrent"): _LG_BATCHER,
    ("postgres", "test_store.py", "test_escape_like_literal"): _LG_INTERNAL,
    ("postgres", "test_store.py", "test_namespace_match_pattern"): _LG_INTERNAL,
    ("sqlite", "test_store.py", "test_escape_glob_literal"): _LG_INTERNAL,
    ("sqlite", "test_store.py", "test_namespace_match_pattern"): _LG_INTERNAL,
    ("sqlite", "test_store.py", "test_list_namespaces_prefix_uses_indexable_condition"): (
        _LG_INTERNAL
    ),
    ("postgres", "test_async_store.py", "test_abatch_uses_single_pool_checkout"): (
        "counts connection checkouts by patching LangGraph's _ainternal.get_connection"
    ),
    ("postgres", "test_store.py", "test_nonnull_migrations"): _LG_MIGRATIONS,
    ("sqlite", "test_store.py", "test_nonnull_migrations"): _LG_MIGRATIONS,
    ("sqlite", "test_store.py", "test_vector_store_initialization"): (
        "reads SQLite's sqlite_master through store.conn to find LangGraph's vector tables"
    ),
    ("sqlite", "test_store.py", "test_sql_injection_vulnerability"): (
        "expects SQLite's own wording 'Invalid filter key'; our stores raise "
        "InvalidFilterError (a ValueError, as the test asks) worded our way"
    ),
    **{
        (suite, file, f"test_omit_expired_{name}"): _OMIT_EXPIRED
        for suite, file in (("postgres", "test_store.py"), ("postgres", "test_async_store.py"))
        for name in (
            "filters_read_paths",
            "disabled_preserves_expired_rows",
            "refresh_ttl_only_refreshes_live_rows",
            "search_pagination",
        )
    },
}


_CALLS_SYNC_ON_LOOP = (
    "calls the store's sync methods from inside its own event loop (directly, or through "
    "LangGraph's MockAsyncBatchedStore) and expects them to work: an async store raises "
    "asyncio.InvalidStateError there, as LangGraph's async stores do"
)
# (suite, file, test id with parameters) -> why an async store cannot run it.
ASYNC_DESELECTED: dict[tuple[str, str, str], str] = {
    ("memory", "test_store.py", "test_cannot_put_empty_namespace"): _CALLS_SYNC_ON_LOOP,
    (
        "memory",
        "test_store.py",
        "test_async_search_and_listing_keep_empty_prefixes_and_wildcards[True]",
    ): _CALLS_SYNC_ON_LOOP,
}


def _new_place() -> str:
    return f"lg_{uuid.uuid4().hex[:12]}"


_BY_CONN: dict[str, str] = {}
_PLACES: list[str] = []
_OPENED: list[tuple[Any, Any]] = []


def _place_for(conn_string: str | None) -> str:
    if conn_string in (None, ":memory:"):
        place = _new_place()
    else:
        place = _BY_CONN.setdefault(str(conn_string), _new_place())
    if place not in _PLACES:
        _PLACES.append(place)
    return place


def _where(place: str, index: Any, ttl: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"schema" if IS_PG else "prefix": place}
    if index is not None:
        kwargs["index"] = index
    if ttl is not None:
        kwargs["ttl"] = ttl
    return kwargs


def _place_of(store: Any) -> str:
    return str(store.schema if IS_PG else "lg_no_such_schema")


@contextlib.contextmanager
def _pg_cursor(place: str) -> Iterator[Any]:
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(place)))
        with conn.cursor() as cur:
            yield cur


class SyncShim:
    """Our sync store wearing LangGraph's `from_conn_string` / `_cursor` surface."""

    MIGRATIONS: ClassVar[list[Any]] = []
    base: Any = PostgresStore if IS_PG else RedisStore

    def __new__(cls, *, index: Any = None, ttl: Any = None, **_: Any) -> Any:
        """InMemoryStore's way: a set-up store, closed after the test."""
        place = _place_for(None)
        source: Any
        if IS_PG:
            source = ConnectionPool(
                PG_URL, min_size=1, max_size=10, kwargs={"autocommit": True}, open=True
            )
        else:
            source = (
                redis.RedisCluster.from_url(REDIS_URL)
                if CLUSTER
                else redis.Redis.from_url(REDIS_URL)
            )
        store = _SYNC(source, **_where(place, index, ttl))
        store.setup()
        _OPENED.append((store, source))
        return store

    @classmethod
    @contextlib.contextmanager
    def from_conn_string(
        cls, conn_string: str | None = None, *, index: Any = None, ttl: Any = None, **_: Any
    ) -> Iterator[Any]:
        kwargs = _where(_place_for(conn_string), index, ttl)
        if IS_PG:
            with _SYNC.from_conn_string(PG_URL, pool_size=10, **kwargs) as store:
                yield store
        else:
            with _SYNC.from_url(REDIS_URL, cluster=CLUSTER, **kwargs) as store:
                yield store


class _SyncPostgres(PostgresStore):
    MIGRATIONS: ClassVar[list[Any]] = []

    @contextlib.contextmanager
    def _cursor(self) -> Iterator[Any]:
        with _pg_cursor(_place_of(self)) as cur:
            yield cur


class _SyncRedis(RedisStore):
    MIGRATIONS: ClassVar[list[Any]] = []

    @contextlib.contextmanager
    def _cursor(self) -> Iterator[Any]:
        with _pg_cursor(_place_of(self)) as cur:
            yield cur


_SYNC: Any = _SyncPostgres if IS_PG else _SyncRedis


@contextlib.asynccontextmanager
async def _apg_cursor(place: str) -> AsyncIterator[Any]:
    async with await psycopg.AsyncConnection.connect(PG_URL, autocommit=True) as conn:
        await conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(place)))
        async with conn.cursor() as cur:
            yield cur


class _AsyncPostgres(AsyncPostgresStore):
    MIGRATIONS: ClassVar[list[Any]] = []

    @contextlib.asynccontextmanager
    async def _cursor(self) -> AsyncIterator[Any]:
        async with _apg_cursor(_place_of(self)) as cur:
            yield cur


class _AsyncRedis(AsyncRedisStore):
    MIGRATIONS: ClassVar[list[Any]] = []

    @contextlib.asynccontextmanager
    async def _cursor(self) -> AsyncIterator[Any]:
        async with _apg_cursor(_place_of(self)) as cur:
            yield cur


_ASYNC: Any = _AsyncPostgres if IS_PG else _AsyncRedis


class AsyncShim:
    """Our async store wearing LangGraph's `from_conn_string` / `_cursor` surface."""

    MIGRATIONS: ClassVar[list[Any]] = []

    def __new__(cls, *, index: Any = None, ttl: Any = None, **_: Any) -> Any:
        """InMemoryStore's way, inside a running loop: set up by the sync twin, then opened."""
        kwargs = _where(_place_for(None), index, ttl)
        source: Any
        if IS_PG:
            with PostgresStore.from_conn_string(PG_URL, **kwargs) as twin:
                twin.setup()
            with warnings.catch_warnings():  # opening in the constructor needs a running loop
                warnings.simplefilter("ignore", DeprecationWarning)
                source = AsyncConnectionPool(
                    PG_URL, min_size=1, max_size=10, kwargs={"autocommit": True}, open=True
                )
        else:
            with RedisStore.from_url(REDIS_URL, cluster=CLUSTER, **kwargs) as twin:
                twin.setup()
            source = (
                redis.asyncio.RedisCluster.from_url(REDIS_URL)
                if CLUSTER
                else redis.asyncio.Redis.from_url(REDIS_URL)
            )
        store = _ASYNC(source, **kwargs)
        _OPENED.append((store, source))
        return store

    @classmethod
    @contextlib.asynccontextmanager
    async def from_conn_string(
        cls, conn_string: str | None = None, *, index: Any = None, ttl: Any = None, **_: Any
    ) -> AsyncIterator[Any]:
        kwargs = _where(_place_for(conn_string), index, ttl)
        if IS_PG:
            async with _ASYNC.from_conn_string(PG_URL, pool_size=10, **kwargs) as store:
                yield store
        else:
            async with _ASYNC.from_url(REDIS_URL, cluster=CLUSTER, **kwargs) as store:
                yield store


SHIM: Any = AsyncShim if IS_ASYNC else SyncShim


def _internal(*_: Any, **__: Any) -> Any:
    raise NotImplementedError("a LangGraph SQLite internal; its tests are deselected")


def _install_fakes() -> None:
    """Stand-ins for modules the suites import that we do not install."""
    if importlib.util.find_spec("pytest_mock") is None:
        fake = types.ModuleType("pytest_mock")
        fake.MockerFixture = Any  # type: ignore[attr-defined]
        sys.modules["pytest_mock"] = fake
    if (
        importlib.util.find_spec("aiosqlite") is None
        or importlib.util.find_spec("sqlite_vec") is None
        or importlib.util.find_spec("langgraph.store.sqlite") is None
    ):
        pkg = types.ModuleType("langgraph.store.sqlite")
        pkg.__path__ = []  # type: ignore[attr-defined]
        pkg.SqliteStore = SHIM  # type: ignore[attr-defined]
        pkg.AsyncSqliteStore = SHIM  # type: ignore[attr-defined]
        base = types.ModuleType("langgraph.store.sqlite.base")
        base.SqliteIndexConfig = IndexConfig  # type: ignore[attr-defined]
        for name in (
            "NS_MATCH_FUNCTION",
            "BaseSqliteStore",
            "_escape_glob_literal",
            "_namespace_match_pattern",
        ):
            setattr(base, name, _internal)
        sys.modules["langgraph.store.sqlite"] = pkg
        sys.modules["langgraph.store.sqlite.base"] = base


def pytest_configure(config: pytest.Config) -> None:
    """Install the stand-in modules before the suites are imported (not on mere import)."""
    _install_fakes()


def _key(item: pytest.Item) -> tuple[str, str, str]:
    function = getattr(item, "originalname", item.name)
    return (item.path.parent.parent.name, item.path.name, function)


def _why_deselected(item: pytest.Item) -> str | None:
    key = _key(item)
    if key in DESELECTED:
        return DESELECTED[key]
    if IS_ASYNC and (key[0], key[1], item.name) in ASYNC_DESELECTED:
        return ASYNC_DESELECTED[(key[0], key[1], item.name)]
    function = getattr(item, "function", None)
    if IS_ASYNC and key[0] == "memory" and not inspect.iscoroutinefunction(function):
        return _SYNC_ON_ASYNC
    return None


_REPORT: dict[str, Any] = {"passed": [], "failed": [], "skipped": [], "deselected": {}}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept, dropped = [], []
    for item in items:
        module = getattr(item, "module", None)
        for name in SWAPPED:
            if module is not None and hasattr(module, name):
                setattr(module, name, SHIM)
        reason = _why_deselected(item)
        if reason is None:
            kept.append(item)
        else:
            dropped.append(item)
            _REPORT["deselected"][item.nodeid] = reason
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A vector test on a PostgreSQL server without pgvector is skipped, not failed."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    excinfo = call.excinfo
    if (
        excinfo is not None
        and excinfo.errisinstance(FeatureUnavailableError)
        and "pgvector" in str(excinfo.value)
    ):
        report.outcome = "skipped"
        report.longrepr = (str(item.path), 0, "Skipped: the PostgreSQL server has no pgvector")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.failed:
        if report.nodeid not in _REPORT["failed"]:
            _REPORT["failed"].append(report.nodeid)
    elif report.skipped:
        _REPORT["skipped"].append(report.nodeid)
    elif report.when == "call":
        _REPORT["passed"].append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = os.environ.get("LANGMEM_SUITE_REPORT")
    if path:
        with open(path, "w") as out:
            json.dump(_REPORT, out, indent=1)


def _drop(place: str) -> None:
    if IS_PG:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(place)))
        return
    client = redis.RedisCluster.from_url(REDIS_URL) if CLUSTER else redis.Redis.from_url(REDIS_URL)
    try:
        for key in client.scan_iter(match=f"{place}:*", count=1000):
            client.delete(key)
    finally:
        close_client(client)


class _Spies:
    """pytest-mock's `mocker.spy`, the one part of it the suites use (it is not installed)."""

    def __init__(self, stack: contextlib.ExitStack) -> None:
        self._stack = stack

    def spy(self, owner: Any, name: str) -> Any:
        """Record calls of `owner.name` (our store's class when `owner` is the shim)."""
        target = (_ASYNC if IS_ASYNC else _SYNC) if owner is SHIM else owner
        original = getattr(target, name)
        return self._stack.enter_context(
            mock.patch.object(target, name, autospec=True, side_effect=original)
        )


@pytest.fixture
def mocker() -> Iterator[_Spies]:
    """`mocker.spy`, when pytest-mock is not installed."""
    with contextlib.ExitStack() as stack:
        yield _Spies(stack)


@pytest.fixture(autouse=True)
async def _langmem_cleanup() -> AsyncIterator[None]:
    """Close the stores made InMemoryStore's way and remove every place the test used."""
    yield
    while _OPENED:
        store, source = _OPENED.pop()
        if IS_ASYNC:
            await store.aclose()
            await (source.close() if IS_PG else source.aclose())
        else:
            store.close()
            source.close() if IS_PG else close_client(source)
    while _PLACES:
        _drop(_PLACES.pop())
    _BY_CONN.clear()

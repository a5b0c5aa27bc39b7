"""A missing setup names the object whose setup is missing; a URL where a connection belongs
names the constructor that takes one."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest
import redis
from langchain_core.messages import HumanMessage
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from langmem_prod import (
    AsyncPostgresStore,
    AsyncRedisStore,
    PostgresChatMessageHistory,
    PostgresStore,
    RedisStore,
)
from langmem_prod.compliance import PostgresAuditLog, RedisAuditLog
from langmem_prod.errors import ConfigurationError, SchemaNotReadyError
from langmem_prod.history import aclose_shared_connections
from langmem_prod.tenancy import PostgresRateLimiter, PostgresTenantRegistry, RedisTenantRegistry
from tests.conftest import PgServer, drop_schema, new_schema

URL = "postgresql://app@db.example:5432/app"


@pytest.fixture
def fresh_schema(pg: PgServer) -> Iterator[str]:
    """A schema name nothing has set up (dropped afterwards in case a test created it)."""
    name = new_schema()
    yield name
    drop_schema(pg.url, name)


@pytest.fixture
def pool(pg: PgServer) -> Iterator[ConnectionPool]:
    with ConnectionPool(pg.url, min_size=1, max_size=2, kwargs={"autocommit": True}) as opened:
        yield opened


@pytest.fixture
async def apool(pg: PgServer) -> AsyncIterator[AsyncConnectionPool]:
    async with AsyncConnectionPool(
        pg.url, min_size=1, max_size=2, kwargs={"autocommit": True}
    ) as opened:
        yield opened


def says(call: str, other: str) -> re.Pattern[str]:
    """The error names `call`, and the message is about the right object (not `other`)."""
    return re.compile(rf"^(?!.*{re.escape(other)}).*call {re.escape(call)} once", re.S)


def test_store_names_store_setup(pool: ConnectionPool, fresh_schema: str) -> None:
    with PostgresStore(pool, schema=fresh_schema, start_sweeper=False) as store:
        with pytest.raises(SchemaNotReadyError, match=says("store.setup()", "history")):
            store.put(("a",), "k", {"v": 1})
        with pytest.raises(SchemaNotReadyError, match="the store's tables"):
            store.get(("a",), "k")


async def test_async_store_names_awaited_setup(
    apool: AsyncConnectionPool, fresh_schema: str
) -> None:
    async with AsyncPostgresStore(apool, schema=fresh_schema, start_sweeper=False) as store:
        with pytest.raises(SchemaNotReadyError, match=says("await store.setup()", "history")):
            await store.aget(("a",), "k")


def test_history_names_history_setup(pool: ConnectionPool, fresh_schema: str) -> None:
    history = PostgresChatMessageHistory("s1", pool, schema=fresh_schema)
    with pytest.raises(SchemaNotReadyError, match=says("history.setup()", "store.setup()")):
        history.add_user_message("hi")
    with pytest.raises(SchemaNotReadyError, match="the chat history's tables"):
        history.get_messages()


def test_history_next_to_a_set_up_store_still_names_history_setup(
    pool: ConnectionPool, fresh_schema: str
) -> None:
    with PostgresStore(pool, schema=fresh_schema, start_sweeper=False) as store:
        store.setup()  # the store's tables exist; the history's do not
    history = PostgresChatMessageHistory("s1", pool, schema=fresh_schema)
    with pytest.raises(SchemaNotReadyError, match=says("history.setup()", "store.setup()")):
        history.get_messages()


async def test_async_history_names_awaited_asetup(
    apool: AsyncConnectionPool, fresh_schema: str
) -> None:
    history = PostgresChatMessageHistory("s1", apool, schema=fresh_schema)
    with pytest.raises(SchemaNotReadyError, match=says("await history.asetup()", "store")):
        await history.aadd_messages([HumanMessage("hi")])


async def test_history_on_a_url_names_history_setup_both_ways(
    pg: PgServer, fresh_schema: str
) -> None:
    history = PostgresChatMessageHistory("s1", pg.url, schema=fresh_schema)
    try:
        with pytest.raises(SchemaNotReadyError, match=says("await history.asetup()", "store")):
            await history.aget_messages()
    finally:
        await aclose_shared_connections()  # this loop's pool on the URL
    with pytest.raises(SchemaNotReadyError, match=says("history.setup()", "store")):
        history.get_messages()


def test_registry_audit_and_limiter_name_their_own_setup(
    pool: ConnectionPool, fresh_schema: str
) -> None:
    registry = PostgresTenantRegistry(pool, schema=fresh_schema)
    with pytest.raises(SchemaNotReadyError, match=says("registry.setup()", "store")):
        registry.get("acme")
    audit = PostgresAuditLog(pool, schema=fresh_schema)
    with pytest.raises(SchemaNotReadyError, match=says("audit.setup()", "store")):
        audit.record("acme", [("put", ("notes",), "k1")])
    limiter = PostgresRateLimiter(pool, rate=10, schema=fresh_schema)
    with pytest.raises(SchemaNotReadyError, match=says("limiter.setup()", "store")):
        limiter.acquire("acme")


async def test_async_registry_names_awaited_asetup(
    apool: AsyncConnectionPool, fresh_schema: str
) -> None:
    registry = PostgresTenantRegistry(apool, schema=fresh_schema)
    with pytest.raises(SchemaNotReadyError, match=says("await registry.asetup()", "store")):
        await registry.aget("acme")


def test_once_set_up_nothing_is_refused(pool: ConnectionPool, fresh_schema: str) -> None:
    history = PostgresChatMessageHistory("s1", pool, schema=fresh_schema)
    history.setup()
    history.add_user_message("hi")
    assert [m.content for m in history.messages] == ["hi"]


@pytest.mark.parametrize(
    ("cls", "constructor"),
    [
        (PostgresStore, "with PostgresStore.from_conn_string(url) as store:"),
        (AsyncPostgresStore, "with AsyncPostgresStore.from_conn_string(url) as store:"),
        (RedisStore, "with RedisStore.from_url(url) as store:"),
        (AsyncRedisStore, "with AsyncRedisStore.from_url(url) as store:"),
    ],
)
def test_a_url_given_to_a_store_points_at_its_url_constructor(cls: type, constructor: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(constructor)) as caught:
        cls(URL)
    assert URL not in str(caught.value)  # never echo what may hold a password


@pytest.mark.parametrize(
    ("make", "hint"),
    [
        (lambda: PostgresTenantRegistry(URL), "ConnectionPool(url"),
        (lambda: PostgresAuditLog(URL), "ConnectionPool(url"),
        (lambda: PostgresRateLimiter(URL), "ConnectionPool(url"),
        (lambda: RedisTenantRegistry("redis://cache:6379/0"), "redis.Redis.from_url(url)"),
        (lambda: RedisAuditLog("redis://cache:6379/0"), "redis.Redis.from_url(url)"),
    ],
)
def test_a_url_given_to_a_registry_audit_or_limiter_says_what_to_build(
    make: object, hint: str
) -> None:
    with pytest.raises(ConfigurationError, match=r"not a URL.*" + re.escape(hint)):
        make()  # type: ignore[operator]


def test_a_real_connection_is_still_accepted(pg: PgServer, fresh_schema: str) -> None:
    with psycopg.connect(pg.url, autocommit=True) as conn:
        store = PostgresStore(conn, schema=fresh_schema, start_sweeper=False)
        store.setup()
        store.put(("a",), "k", {"v": 1})
        assert store.get(("a",), "k").value == {"v": 1}
        store.close()
    client = redis.Redis()  # not connected until used
    RedisStore(client, start_sweeper=False).close()
    client.close()

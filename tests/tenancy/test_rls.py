"""Row-level security: raw SQL on a tenant-scoped connection sees and writes only its tenant.

Every test runs on each PostgreSQL target, with fresh login roles (no BYPASSRLS) that
are dropped afterwards.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.store.base import GetOp, PutOp
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from langmem_prod import AsyncPostgresStore, PostgresChatMessageHistory, PostgresStore
from langmem_prod.errors import (
    BackendError,
    ConfigurationError,
    QuotaExceededError,
    SchemaNotReadyError,
)
from langmem_prod.store.postgres._schema import _MIGRATIONS_TABLE, CORE_MIGRATIONS, pending
from langmem_prod.store.postgres._sql import Statement, render
from langmem_prod.tenancy import (
    PostgresTenantRegistry,
    TenantStore,
    agrant_tenant_role,
    grant_tenant_role,
    revoke_tenant_role,
)
from tests.conftest import PgServer

pytestmark = pytest.mark.postgres

_ROLE_TABLES = ("items", "namespaces", "chat_sessions", "chat_messages")


def _admin(pg: PgServer) -> psycopg.Connection[Any]:
    return psycopg.connect(pg.url, autocommit=True)


@pytest.fixture
def new_role(pg: PgServer, schema: str) -> Iterator[Any]:
    """A factory of LOGIN roles without BYPASSRLS, all dropped at the end."""
    made: list[str] = []

    def make() -> str:
        name = f"lm_rls_{uuid.uuid4().hex[:10]}"
        with _admin(pg) as conn:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOBYPASSRLS").format(sql.Identifier(name)))
        made.append(name)
        return name

    yield make
    with _admin(pg) as conn:
        for name in made:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


@pytest.fixture
def owner_pool(pg: PgServer) -> Iterator[ConnectionPool[Any]]:
    with ConnectionPool(pg.url, max_size=4, kwargs={"autocommit": True}) as pool:
        yield pool


@pytest.fixture
def world(owner_pool: ConnectionPool[Any], schema: str) -> Iterator[Any]:
    """Schema set up by its owner; tenants acme and globex in the registry."""
    registry = PostgresTenantRegistry(owner_pool, schema=schema)
    registry.setup()
    registry.create("acme")
    registry.create("globex")
    PostgresChatMessageHistory("setup", owner_pool, schema=schema).setup()
    with PostgresStore(owner_pool, schema=schema, start_sweeper=False) as store:
        store.setup()
        yield store, registry


def _history(pool: Any, schema: str, tenant: str | None, session: str = "s1") -> Any:
    return PostgresChatMessageHistory(session, pool, tenant_id=tenant, schema=schema)


def _seed(world: Any, owner_pool: ConnectionPool[Any], schema: str) -> None:
    store, registry = world
    TenantStore(store, registry, "acme", user_id="ada").put(("notes",), "n1", {"v": "acme"})
    TenantStore(store, registry, "globex", user_id="bob").put(("notes",), "n1", {"v": "globex"})
    store.put(("shared",), "s1", {"v": "no tenant"})
    for tenant in ("acme", "globex", None):
        _history(owner_pool, schema, tenant).add_messages([HumanMessage(f"hi {tenant}")])


def _tenants(conn: psycopg.Connection[Any], schema: str, table: str, column: str) -> set[str]:
    query = sql.SQL("SELECT DISTINCT {} FROM {}.{}").format(
        sql.Identifier(column), sql.Identifier(schema), sql.Identifier(table)
    )
    return {row[0] for row in conn.execute(query).fetchall()}


def _visible(conn: psycopg.Connection[Any], schema: str) -> dict[str, set[str]]:
    return {
        "items": _tenants(conn, schema, "items", "tenant"),
        "namespaces": _tenants(conn, schema, "namespaces", "tenant"),
        "sessions": _tenants(conn, schema, "chat_sessions", "tenant_id"),
        "messages": _tenants(conn, schema, "chat_messages", "tenant_id"),
        "usage": _tenants(conn, schema, "tenant_usage", "tenant_id"),
    }


def _rejected(conn: psycopg.Connection[Any], statement: str, *params: Any) -> None:
    """The statement fails with a privilege / RLS error (SQLSTATE 42501)."""
    with pytest.raises(pg_errors.InsufficientPrivilege):
        conn.execute(statement, params)


def test_tenant_role_reads_and_writes_only_its_tenant(
    pg: PgServer, schema: str, world: Any, owner_pool: ConnectionPool[Any], new_role: Any
) -> None:
    _seed(world, owner_pool, schema)
    role = new_role()
    grant_tenant_role(owner_pool, role, "acme", schema=schema)
    grant_tenant_role(owner_pool, role, "acme", schema=schema)  # idempotent
    acme_only = {k: {"acme"} for k in ("items", "namespaces", "sessions", "messages", "usage")}
    s = sql.Identifier(schema).as_string(None)
    with psycopg.connect(pg.url, user=role, autocommit=True) as conn:
        assert conn.execute("SELECT current_user, current_setting('is_superuser')").fetchone() == (
            role,
            "off",
        )
        assert _visible(conn, schema) == acme_only  # its only tenant, with none set
        conn.execute("SET langmem.tenant = 'globex'")  # not its tenant: sees nothing
        assert all(not tenants for tenants in _visible(conn, schema).values())
        assert conn.execute(f"SELECT {s}.current_tenant()").fetchone() == (None,)
        conn.execute("SET langmem.tenant = 'acme'")
        assert _visible(conn, schema) == acme_only
        # Its binding only; the bindings table is not writable.
        assert conn.execute(f"SELECT role, tenant_id FROM {s}.tenant_roles").fetchall() == [
            (role, "acme")
        ]
        _rejected(conn, f"INSERT INTO {s}.tenant_roles VALUES (current_user, 'globex')")
        _rejected(conn, f"UPDATE {s}.tenant_usage SET max_items = NULL")
        for tenant in ("acme", "globex"):  # globex's rows stay out of reach either way
            conn.execute("SELECT set_config('langmem.tenant', %s, false)", (tenant,))
            for table, column in (("items", "tenant"), ("chat_messages", "tenant_id")):
                where = f"FROM {s}.{table} WHERE {column} = 'globex'"
                assert conn.execute(f"DELETE {where}").rowcount == 0
                assert (
                    conn.execute(
                        f"UPDATE {s}.{table} SET created_at = now() WHERE {column} = 'globex'"
                    ).rowcount
                    == 0
                )
            # Rows claiming globex are refused, whether new or moved there.
            _rejected(
                conn,
                f"INSERT INTO {s}.items (prefix, key, value, created_at, updated_at) "
                "VALUES ('tenants.globex.bob.notes', 'x', '{}', now(), now())",
            )
            _rejected(
                conn,
                f"INSERT INTO {s}.chat_messages (tenant_id, session_id, seq, message, created_at) "
                "VALUES ('globex', 's1', 99, '\\x00', now())",
            )
            _rejected(
                conn,
                f"INSERT INTO {s}.items (prefix, key, value, created_at, updated_at) "
                "VALUES ('shared', 'x', '{}', now(), now())",
            )
        conn.execute("RESET langmem.tenant")
        _rejected(conn, f"UPDATE {s}.items SET prefix = 'tenants.globex.moved'")
        # Its own tenant is writable, and counted by the quota trigger.
        conn.execute(
            f"INSERT INTO {s}.items (prefix, key, value, created_at, updated_at) "
            "VALUES ('tenants.acme.raw', 'k', '{\"v\": 1}', now(), now())"
        )
    store, registry = world
    assert registry.usage("acme")["items"] == 2
    assert store.get(("tenants", "globex", "bob", "notes"), "n1").value == {"v": "globex"}
    assert store.get(("shared",), "s1").value == {"v": "no tenant"}
    assert [m.content for m in _history(owner_pool, schema, "globex").messages] == ["hi globex"]


def test_store_as_app_role_sets_the_tenant_per_transaction(
    pg: PgServer, schema: str, world: Any, new_role: Any
) -> None:
    owner_store, registry = world
    registry.update("acme", max_items=3)
    app = new_role()
    with _admin(pg) as conn:  # an unbound service role: DML, no BYPASSRLS
        conn.execute(
            sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
                sql.Identifier(schema), sql.Identifier(app)
            )
        )
        for table in _ROLE_TABLES:
            conn.execute(
                sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON {}.{} TO {}").format(
                    sql.Identifier(schema), sql.Identifier(table), sql.Identifier(app)
                )
            )
    app_url = psycopg.conninfo.make_conninfo(pg.url, user=app)
    with (
        ConnectionPool(app_url, min_size=1, max_size=1, kwargs={"autocommit": True}) as pool,
        PostgresStore(pool, schema=schema, start_sweeper=False, track_access="sync") as store,
    ):
        acme = TenantStore(store, registry, "acme", user_id="ada")
        acme.put(("notes",), "n1", {"v": 1})
        acme.put(("notes",), "n2", {"v": 2})
        assert acme.get(("notes",), "n1").value == {"v": 1}
        assert [i.key for i in acme.search(("notes",), filter={"v": {"$gte": 2}})] == ["n2"]
        assert acme.list_namespaces() == [("notes",)]
        with pytest.raises(QuotaExceededError):  # the trigger counts an app role's writes
            acme.batch([PutOp(("notes",), f"q{n}", {"n": n}) for n in range(2)])
        acme.delete(("notes",), "n2")
        store.put(("shared",), "k", {"v": "outside tenants"})
        globex_ns = ("tenants", "globex", "bob", "notes")
        owner_store.put(globex_ns, "g1", {"v": "g"})
        # Reads of two tenants in one batch each run in their tenant.
        found = store.batch(
            [GetOp(("tenants", "acme", "ada", "notes"), "n1"), GetOp(globex_ns, "g1")]
        )
        assert [r.value if r else None for r in found] == [{"v": 1}, {"v": "g"}]
        # A write spanning tenants runs in none: refused whole.
        with pytest.raises(BackendError, match="row-level security"):
            store.batch([PutOp(globex_ns, "x", {"v": 0}), PutOp(("shared",), "x", {"v": 0})])
        assert store.get(("shared",), "x") is None
        history = _history(pool, schema, "acme")
        history.add_messages([HumanMessage("hi"), AIMessage("hello")])
        assert [m.content for m in history.messages] == ["hi", "hello"]
        _history(pool, schema, None).add_messages([HumanMessage("no tenant")])
        with pool.connection() as conn:  # the pool's only connection keeps no tenant
            assert conn.execute("SELECT current_setting('langmem.tenant', true)").fetchone() in (
                ("",),
                (None,),
            )
            # Without the setting, the app role sees no tenant's rows.
            rows = conn.execute(
                sql.SQL("SELECT tenant FROM {}.items").format(sql.Identifier(schema))
            ).fetchall()
            assert rows == [("",)]
    # Only the owner's runner skips the tenant settings: RLS leaves it alone.
    assert (store._runner.bypasses_rls, owner_store._runner.bypasses_rls) == (False, True)
    # The access statistics of the tenant's reads were written (in its tenant).
    with _admin(pg) as conn:
        count = conn.execute(
            sql.SQL("SELECT access_count FROM {}.items WHERE prefix = %s AND key = 'n1'").format(
                sql.Identifier(schema)
            ),
            ("tenants.acme.ada.notes",),
        ).fetchone()
    assert count is not None and count[0] >= 1
    assert registry.usage("acme")["items"] == 1


async def test_async_app_role_coalesced_reads_of_two_tenants(
    pg: PgServer, schema: str, world: Any, new_role: Any
) -> None:
    owner_store, _ = world
    for tenant in ("acme", "globex"):
        owner_store.put(("tenants", tenant, "notes"), "k", {"v": tenant})
    app = new_role()
    bound = new_role()
    with _admin(pg) as conn:
        conn.execute(
            sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
                sql.Identifier(schema), sql.Identifier(app)
            )
        )
        conn.execute(
            sql.SQL("GRANT SELECT ON {}.items, {}.namespaces TO {}").format(
                sql.Identifier(schema), sql.Identifier(schema), sql.Identifier(app)
            )
        )
    app_url = psycopg.conninfo.make_conninfo(pg.url, user=app)
    async with (
        AsyncConnectionPool(app_url, min_size=1, max_size=1, kwargs={"autocommit": True}) as pool,
        AsyncPostgresStore(pool, schema=schema, start_sweeper=False, track_access="off") as store,
    ):
        items = await asyncio.gather(
            *(store.aget(("tenants", t, "notes"), "k") for t in ("acme", "globex"))
        )
        assert [i.value["v"] if i else None for i in items] == ["acme", "globex"]
        assert await store.aget(("tenants", "acme", "notes"), "nope") is None
        async with pool.connection() as conn:
            cur = await conn.execute("SELECT current_setting('langmem.tenant', true)")
            assert await cur.fetchone() in (("",), (None,))
    # Bound to acme, the same store sees only acme.
    async with AsyncConnectionPool(pg.url, kwargs={"autocommit": True}) as owner:
        await agrant_tenant_role(owner, bound, "acme", schema=schema)
    bound_url = psycopg.conninfo.make_conninfo(pg.url, user=bound)
    async with (
        AsyncConnectionPool(bound_url, min_size=1, max_size=1, kwargs={"autocommit": True}) as pool,
        AsyncPostgresStore(pool, schema=schema, start_sweeper=False, track_access="off") as store,
    ):
        items = await asyncio.gather(
            *(store.aget(("tenants", t, "notes"), "k") for t in ("acme", "globex"))
        )
        assert [i.value["v"] if i else None for i in items] == ["acme", None]


def test_grant_checks_and_revoke(
    pg: PgServer, schema: str, world: Any, owner_pool: ConnectionPool[Any], new_role: Any
) -> None:
    role = new_role()
    grant_tenant_role(owner_pool, role, "acme", schema=schema)
    grant_tenant_role(owner_pool, role, "globex", schema=schema)
    _seed(world, owner_pool, schema)
    with psycopg.connect(pg.url, user=role, autocommit=True) as conn:
        # Two tenants: none until one is picked.
        assert _tenants(conn, schema, "items", "tenant") == set()
        conn.execute("SET langmem.tenant = 'globex'")
        assert _tenants(conn, schema, "items", "tenant") == {"globex"}
    revoke_tenant_role(owner_pool, role, "globex", schema=schema)
    with psycopg.connect(pg.url, user=role, autocommit=True) as conn:
        assert _tenants(conn, schema, "items", "tenant") == {"acme"}
    revoke_tenant_role(owner_pool, role, "acme", schema=schema)
    with (
        psycopg.connect(pg.url, user=role, autocommit=True) as conn,
        pytest.raises(pg_errors.InsufficientPrivilege),
    ):
        _tenants(conn, schema, "items", "tenant")
    with pytest.raises(ConfigurationError, match="does not exist"):
        grant_tenant_role(owner_pool, f"nobody_{uuid.uuid4().hex[:8]}", "acme", schema=schema)
    with pytest.raises(ConfigurationError, match="bypasses row-level security"):
        grant_tenant_role(owner_pool, "postgres", "acme", schema=schema)
    with pytest.raises(SchemaNotReadyError, match="setup"):
        grant_tenant_role(owner_pool, role, "acme", schema=f"{schema}_missing")


def test_upgrade_from_a_schema_without_rls(pg: PgServer, schema: str, new_role: Any) -> None:
    """A schema at core version 2 with data gets the tenant column and its policies."""
    with _admin(pg) as conn, conn.transaction():
        for statement in [
            Statement(f'CREATE SCHEMA "{schema}"'),
            Statement(render(_MIGRATIONS_TABLE, schema)),
            *pending("core", CORE_MIGRATIONS[:2], 0, schema, None),
        ]:
            conn.execute(statement.sql, statement.params)
    with ConnectionPool(pg.url, min_size=1, max_size=2, kwargs={"autocommit": True}) as pool:
        with PostgresStore(pool, schema=schema, start_sweeper=False) as store:
            store.put(("tenants", "acme", "notes"), "old", {"v": 1})
            store.put(("tenants", "globex", "notes"), "old", {"v": 2})
            store.setup()
            assert store.get(("tenants", "acme", "notes"), "old").value == {"v": 1}
        role = new_role()
        grant_tenant_role(pool, role, "acme", schema=schema)
    with psycopg.connect(pg.url, user=role, autocommit=True) as conn:
        assert _tenants(conn, schema, "items", "tenant") == {"acme"}
        assert _tenants(conn, schema, "namespaces", "tenant") == {"acme"}

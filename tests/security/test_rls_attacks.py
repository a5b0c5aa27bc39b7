"""Row-level security under attack: roles that try to act outside their tenant binding.

Every attacker is an ordinary NOSUPERUSER role, and so is the schema's owner (as in
production), with any application role separate. The superuser only plays the DBA who
creates roles and grants memberships. Each test runs on every PostgreSQL target; roles,
schemas and databases it creates are dropped afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from langchain_core.messages import HumanMessage
from psycopg import errors as pg_errors
from psycopg import sql
from psycopg_pool import ConnectionPool

from langmem_prod import PostgresChatMessageHistory, PostgresStore
from langmem_prod.compliance import PostgresAuditLog
from langmem_prod.errors import ConfigurationError
from langmem_prod.store.postgres._schema import (
    _MIGRATIONS_TABLE,
    CORE_MIGRATIONS,
    RLS_MIGRATIONS,
    pending,
)
from langmem_prod.store.postgres._sql import Statement, render
from langmem_prod.tenancy import PostgresTenantRegistry, grant_tenant_role
from tests.conftest import PgServer

pytestmark = pytest.mark.postgres

_TENANT_TABLES = ("items", "namespaces", "chat_sessions", "chat_messages", "tenant_usage")


def _ident(name: str) -> str:
    return sql.Identifier(name).as_string(None)


@dataclass
class Roles:
    """Roles made for one test, dropped (with what they own or hold) at the end."""

    url: str
    made: list[str] = field(default_factory=list)

    def make(self, label: str, options: str = "LOGIN") -> str:
        name = f"lm_rlsatk_{uuid.uuid4().hex[:8]}_{label}"
        self.dba(f"CREATE ROLE {_ident(name)} NOSUPERUSER NOBYPASSRLS {options}")
        self.made.append(name)
        return name

    def adopt(self, name: str) -> str:
        """Drop `name` at the end too (a role some other role created)."""
        self.made.append(name)
        return name

    def dba(self, statement: str, *params: Any) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(statement, params or None)

    def drop_all(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            for name in reversed(self.made):
                if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone():
                    conn.execute(f"DROP OWNED BY {_ident(name)}")
                    conn.execute(f"DROP ROLE {_ident(name)}")


@dataclass
class World:
    """A schema set up by a non-superuser owner: store, histories, registry, audit log."""

    url: str
    schema: str
    owner: str
    roles: Roles
    owner_pool: ConnectionPool[Any]

    @property
    def s(self) -> str:
        return _ident(self.schema)

    def bind(self, role: str, tenant: str) -> None:
        grant_tenant_role(self.owner_pool, role, tenant, schema=self.schema)

    def app_role(self, label: str = "app") -> str:
        """An unbound role with DML on the tenant tables: what a service may run as."""
        app = self.roles.make(label)
        self.roles.dba(f"GRANT USAGE ON SCHEMA {self.s} TO {_ident(app)}")
        for table in _TENANT_TABLES:
            self.roles.dba(
                f"GRANT SELECT, INSERT, UPDATE, DELETE ON {self.s}.{table} TO {_ident(app)}"
            )
        return app


@pytest.fixture
def roles(pg: PgServer) -> Iterator[Roles]:
    made = Roles(pg.url)
    yield made
    made.drop_all()


def _build(url: str, dba_url: str, schema: str, roles: Roles) -> Iterator[World]:
    """Create the owner and its schema, set everything up as the owner, seed two tenants."""
    owner = roles.make("owner")
    with psycopg.connect(dba_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {_ident(schema)} AUTHORIZATION {_ident(owner)}")
    owner_url = psycopg.conninfo.make_conninfo(url, user=owner)
    with ConnectionPool(owner_url, min_size=1, max_size=2, kwargs={"autocommit": True}) as pool:
        with PostgresStore(pool, schema=schema, start_sweeper=False) as store:
            store.setup()
            registry = PostgresTenantRegistry(pool, schema=schema)
            registry.setup()
            PostgresAuditLog(pool, schema=schema).setup()
            PostgresChatMessageHistory("setup", pool, schema=schema).setup()
            for tenant in ("acme", "globex"):
                registry.create(tenant)
                store.put(("tenants", tenant, "notes"), "n1", {"v": tenant})
                PostgresChatMessageHistory(
                    "s1", pool, tenant_id=tenant, schema=schema
                ).add_messages([HumanMessage(f"hi from {tenant}")])
            store.put(("shared",), "s1", {"v": "no tenant"})
        yield World(url, schema, owner, roles, pool)


@pytest.fixture
def world(pg: PgServer, schema: str, roles: Roles) -> Iterator[World]:
    yield from _build(pg.url, pg.url, schema, roles)


def _connect(url: str, role: str) -> psycopg.Connection[Any]:
    return psycopg.connect(psycopg.conninfo.make_conninfo(url, user=role), autocommit=True)


def _seen(conn: psycopg.Connection[Any], schema: str) -> set[str]:
    """Every tenant whose rows the connection reads in items, namespaces and messages."""
    s = _ident(schema)
    rows = conn.execute(
        f"SELECT tenant FROM {s}.items UNION SELECT tenant FROM {s}.namespaces "
        f"UNION SELECT tenant_id FROM {s}.chat_messages"
    ).fetchall()
    return {row[0] for row in rows}


def _seen_as(conn: psycopg.Connection[Any], schema: str, tenant: str | None) -> set[str]:
    conn.execute("SELECT set_config('langmem.tenant', %s, false)", (tenant or "",))
    return _seen(conn, schema)


def _assert_confined(conn: psycopg.Connection[Any], schema: str, tenant: str) -> None:
    """The connection sees `tenant` and nothing else, whatever tenant it sets."""
    other = "globex" if tenant != "globex" else "acme"
    assert _seen_as(conn, schema, other) == set()
    assert _seen_as(conn, schema, None) == {tenant}
    assert _seen_as(conn, schema, tenant) == {tenant}
    with pytest.raises(pg_errors.InsufficientPrivilege):  # nor write another tenant's rows
        conn.execute(
            f"INSERT INTO {_ident(schema)}.items (prefix, key, value, created_at, updated_at) "
            f"VALUES ('tenants.{other}.forged', 'k', '{{}}', now(), now())"
        )


def test_members_of_a_bound_role_act_with_its_binding(world: World) -> None:
    """Members (direct, a chain of 3, NOINHERIT through SET ROLE) granted after binding."""
    roles, dba = world.roles, world.roles.dba
    acme = roles.make("acme", "NOLOGIN")
    world.bind(acme, "acme")
    direct = roles.make("direct")
    dba(f"GRANT {_ident(acme)} TO {_ident(direct)}")
    chain = [roles.make(f"chain{n}", "NOLOGIN" if n else "LOGIN") for n in range(3)]
    for member, group in zip(chain, [*chain[1:], acme], strict=True):
        dba(f"GRANT {_ident(group)} TO {_ident(member)}")
    middle = roles.make("middle", "NOLOGIN")  # unbound, inherits acme's rights
    dba(f"GRANT {_ident(acme)} TO {_ident(middle)}")
    noinherit = roles.make("noinherit", "LOGIN NOINHERIT")
    dba(f"GRANT {_ident(middle)} TO {_ident(noinherit)}")
    for login in (direct, chain[0]):
        with _connect(world.url, login) as conn:
            _assert_confined(conn, world.schema, "acme")
            bindings = conn.execute(f"SELECT role, tenant_id FROM {world.s}.tenant_roles")
            assert bindings.fetchall() == [(acme, "acme")]  # the binding it acts with
    with _connect(world.url, noinherit) as conn:
        with pytest.raises(pg_errors.InsufficientPrivilege):  # no rights of its own
            _seen(conn, world.schema)
        conn.execute(f"SET ROLE {_ident(middle)}")
        _assert_confined(conn, world.schema, "acme")
        conn.execute(f"SET ROLE {_ident(acme)}")
        _assert_confined(conn, world.schema, "acme")
        # Forced parallel plans may run the pinned policy functions in workers.
        (version,) = conn.execute("SELECT current_setting('server_version_num')::int").fetchone()
        force = "debug_parallel_query" if version >= 160000 else "force_parallel_mode"
        conn.execute(f"SET {force} = on")
        assert _seen_as(conn, world.schema, "globex") == set()
        assert _seen_as(conn, world.schema, None) == {"acme"}


def test_a_bound_session_stays_bound_whatever_role_it_switches_to(world: World) -> None:
    """SET ROLE to an unbound privileged role, or a SECURITY DEFINER function it owns."""
    roles, dba = world.roles, world.roles.dba
    bound = roles.make("bound")
    world.bind(bound, "acme")
    app = world.app_role()
    dba(f"GRANT {_ident(app)} TO {_ident(bound)}")  # a DBA's later mistake
    helpers = f"lm_rlsatk_{uuid.uuid4().hex[:8]}"
    dba(f"CREATE SCHEMA {_ident(helpers)} AUTHORIZATION {_ident(app)}")
    try:
        with _connect(world.url, app) as conn:  # the app role defines a helper ...
            conn.execute(
                f"CREATE FUNCTION {_ident(helpers)}.peek() RETURNS SETOF text "
                "LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog "
                f"AS $$ SELECT tenant FROM {world.s}.items $$"
            )
            conn.execute(f"GRANT USAGE ON SCHEMA {_ident(helpers)} TO {_ident(bound)}")
            conn.execute("SET langmem.tenant = 'globex'")  # ... and, itself, is trusted
            assert _seen(conn, world.schema) == {"globex"}
        with _connect(world.url, bound) as conn:
            _assert_confined(conn, world.schema, "acme")  # with the app role's rights too
            conn.execute("SET langmem.tenant = 'globex'")
            peek = f"SELECT * FROM {_ident(helpers)}.peek()"
            assert conn.execute(peek).fetchall() == []
            conn.execute(f"SET ROLE {_ident(app)}")
            assert _seen_as(conn, world.schema, "globex") == set()
            assert _seen_as(conn, world.schema, None) == set()
            assert conn.execute(peek).fetchall() == []
            with pytest.raises(pg_errors.InsufficientPrivilege):
                conn.execute(f"SET SESSION AUTHORIZATION {_ident(app)}")
    finally:
        dba(f"DROP SCHEMA {_ident(helpers)} CASCADE")


def test_a_role_made_by_a_bound_role_gets_no_other_tenant(pg: PgServer, world: World) -> None:
    """CREATEROLE is refused at binding; granted later, its creations stay confined."""
    roles, dba = world.roles, world.roles.dba
    creator = roles.make("creator", "LOGIN CREATEROLE")
    with pytest.raises(ConfigurationError, match="CREATEROLE"):
        world.bind(creator, "acme")
    bound = roles.make("bound")
    world.bind(bound, "acme")
    dba(f"ALTER ROLE {_ident(bound)} CREATEROLE")  # a DBA's later mistake
    made = roles.adopt(f"lm_rlsatk_{uuid.uuid4().hex[:8]}_made")
    with _connect(world.url, bound) as conn:
        conn.execute(f"CREATE ROLE {_ident(made)} LOGIN")
        try:  # PostgreSQL 15 and older let it hand its own rights on
            conn.execute(f"GRANT {_ident(bound)} TO {_ident(made)}")
            handed = True
        except pg_errors.InsufficientPrivilege:  # 16+: only with ADMIN OPTION on itself
            handed = False
    assert handed == (pg.version < 16)
    with _connect(world.url, made) as conn:
        if handed:
            _assert_confined(conn, world.schema, "acme")
        else:
            with pytest.raises(pg_errors.InsufficientPrivilege):
                _seen_as(conn, world.schema, "globex")


_UNFIT: dict[str, tuple[str, str]] = {
    # label: (what the DBA did to the role {r} ({app}: an app role; {o}: the owner), refusal)
    "createrole": ("ALTER ROLE {r} CREATEROLE", "CREATEROLE"),
    "member of a createrole role": (
        "CREATE ROLE {x} NOLOGIN CREATEROLE; GRANT {x} TO {r}",
        "CREATEROLE through role",
    ),
    "admin option": ("CREATE ROLE {x} NOLOGIN; GRANT {x} TO {r} WITH ADMIN OPTION", "ADMIN"),
    "member of an app role": ("GRANT {app} TO {r}", "bound to no tenant"),
    "noinherit member of an app role": (
        "ALTER ROLE {r} NOINHERIT; GRANT {app} TO {r}",
        "bound to no tenant",
    ),
    "noinherit member of the owner": (
        "ALTER ROLE {r} NOINHERIT; GRANT {o} TO {r}",
        "bypasses row-level security through",
    ),
    "member of a bypassrls role": (
        "CREATE ROLE {x} NOLOGIN BYPASSRLS; GRANT {x} TO {r}",
        "bypasses row-level security through",
    ),
    "truncate": (
        "GRANT USAGE ON SCHEMA {s} TO {r}; GRANT TRUNCATE ON {s}.items TO {r}",
        "TRUNCATE",
    ),
    "trigger": ("GRANT TRIGGER ON {s}.chat_messages TO {r}", "TRIGGER"),
    "registry": ("GRANT SELECT (id) ON {s}.tenants TO {r}", "SELECT on"),
    "audit log": ("GRANT DELETE ON {s}.audit_log TO {r}", "DELETE on"),
    "bindings": ("GRANT INSERT ON {s}.tenant_roles TO {r}", "INSERT on"),
    "create in schema": ("GRANT CREATE ON SCHEMA {s} TO {r}", "CREATE in schema"),
    "member of pg_read_all_data": (
        "GRANT pg_read_all_data TO {r}",
        "'pg_read_all_data', which is bound to no tenant",
    ),
}


@pytest.mark.parametrize("case", sorted(_UNFIT))
def test_grant_refuses_a_role_that_could_step_outside(world: World, case: str) -> None:
    roles = world.roles
    role = roles.make("unfit")
    extra = roles.adopt(f"lm_rlsatk_{uuid.uuid4().hex[:8]}_extra")
    names = {
        "r": _ident(role),
        "x": _ident(extra),
        "app": _ident(world.app_role()),
        "o": _ident(world.owner),
        "s": world.s,
    }
    statements, refusal = _UNFIT[case]
    for statement in statements.split("; "):
        roles.dba(statement.format(**names))
    with pytest.raises(ConfigurationError, match=refusal):
        world.bind(role, "acme")
    with psycopg.connect(world.url, autocommit=True) as conn:  # nothing half-written
        bindings = conn.execute(
            f"SELECT count(*) FROM {world.s}.tenant_roles WHERE role = %s", (role,)
        ).fetchone()
        granted = conn.execute(
            "SELECT count(*) FROM pg_class c, aclexplode(c.relacl) a "
            "WHERE c.relnamespace = %s::regnamespace AND c.relname = ANY(%s) "
            "AND a.grantee = %s::regrole "
            "AND a.privilege_type IN ('SELECT', 'INSERT', 'UPDATE', 'DELETE')",
            (world.schema, list(_TENANT_TABLES), role),
        ).fetchone()
    assert (bindings, granted) == ((0,), (0,))


def test_grant_refuses_predefined_roles(world: World) -> None:
    with pytest.raises(ConfigurationError, match="predefined"):
        world.bind("pg_read_all_data", "acme")


def test_a_binding_follows_its_role_not_its_name(world: World) -> None:
    """Renaming keeps the binding; a dropped role's binding never binds a namesake."""
    roles, dba = world.roles, world.roles.dba
    renamed = roles.make("renamed")
    world.bind(renamed, "acme")
    new_name = roles.adopt(f"{renamed}_new")
    dba(f"ALTER ROLE {_ident(renamed)} RENAME TO {_ident(new_name)}")
    with _connect(world.url, new_name) as conn:
        _assert_confined(conn, world.schema, "acme")
    bystander = roles.make("bystander")
    world.bind(bystander, "globex")
    dropped = roles.make("dropped")
    world.bind(dropped, "acme")
    dba(f"DROP OWNED BY {_ident(dropped)}")
    dba(f"DROP ROLE {_ident(dropped)}")
    dba(f"CREATE ROLE {_ident(dropped)} LOGIN")  # a namesake, made an app role
    dba(f"GRANT USAGE ON SCHEMA {world.s} TO {_ident(dropped)}")
    dba(f"GRANT SELECT ON {world.s}.items, {world.s}.namespaces TO {_ident(dropped)}")
    with _connect(world.url, bystander) as conn:  # the stale binding breaks nobody
        _assert_confined(conn, world.schema, "globex")
    with _connect(world.url, dropped) as conn:  # nor binds the namesake
        conn.execute("SET langmem.tenant = 'globex'")
        assert conn.execute(f"SELECT DISTINCT tenant FROM {world.s}.items").fetchall() == [
            ("globex",)
        ]
    world.bind(dropped, "globex")  # bound now: to globex only
    dba(f"GRANT SELECT ON {world.s}.chat_messages TO {_ident(dropped)}")
    with _connect(world.url, dropped) as conn:
        _assert_confined(conn, world.schema, "globex")
    with psycopg.connect(world.url, autocommit=True) as conn:
        rows = conn.execute(
            f"SELECT tenant_id FROM {world.s}.tenant_roles WHERE role = %s", (dropped,)
        ).fetchall()
    assert rows == [("globex",)]


def test_upgrade_binds_by_oid_and_forgets_dropped_roles(
    pg: PgServer, schema: str, roles: Roles
) -> None:
    """A schema of the first "rls" migration, with a binding and a dropped role's binding."""
    bound = roles.make("bound")
    s = _ident(schema)
    with psycopg.connect(pg.url, autocommit=True) as conn, conn.transaction():
        for statement in [
            Statement(f"CREATE SCHEMA {s}"),
            Statement(render(_MIGRATIONS_TABLE, schema)),
            *pending("rls", RLS_MIGRATIONS[:1], 0, schema, None),
            *pending("core", CORE_MIGRATIONS[:3], 0, schema, None),
        ]:
            conn.execute(statement.sql, statement.params)
        conn.execute(
            f"INSERT INTO {s}.tenant_roles VALUES (%s, 'acme'), ('lm_rlsatk_gone', 'globex')",
            (bound,),
        )
        conn.execute(f"GRANT USAGE ON SCHEMA {s} TO {_ident(bound)}")
        conn.execute(f"GRANT SELECT, INSERT ON {s}.items, {s}.namespaces TO {_ident(bound)}")
    with PostgresStore.from_conn_string(pg.url, schema=schema) as store:
        for tenant in ("acme", "globex"):
            store.put(("tenants", tenant, "notes"), "n1", {"v": tenant})
        store.setup()
    with psycopg.connect(pg.url, autocommit=True) as conn:
        rows = conn.execute(
            f"SELECT role, role_oid::regrole::text, tenant_id FROM {s}.tenant_roles"
        )
        assert rows.fetchall() == [(bound, bound, "acme")]
    PostgresChatMessageHistory("setup", pg.url, schema=schema).setup()
    with psycopg.connect(pg.url, autocommit=True) as conn:
        conn.execute(f"GRANT SELECT ON {s}.chat_messages TO {_ident(bound)}")
    with _connect(pg.url, bound) as conn:
        _assert_confined(conn, schema, "acme")


def test_every_function_pins_its_search_path(world: World) -> None:
    with psycopg.connect(world.url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT p.proname, p.proconfig, p.prosecdef, p.prorettype = 'trigger'::regtype "
            "FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = %s ORDER BY 1",
            (world.schema,),
        ).fetchall()
    names = {row[0] for row in rows}
    assert {"current_tenant", "visible_tenant", "prune_namespaces"} <= names
    for name, config, definer, trigger in rows:
        assert "search_path=pg_catalog, pg_temp" in (config or []), name
        assert trigger or not definer, f"{name} runs as its owner and can be called"


@pytest.fixture
def open_public(pg: PgServer, roles: Roles) -> Iterator[World]:
    """A fresh database whose `public` schema anyone may CREATE in (the pre-15 default)."""
    database = f"lm_rlsatk_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {_ident(database)}")
    url = psycopg.conninfo.make_conninfo(pg.url, dbname=database)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("GRANT CREATE ON SCHEMA public TO PUBLIC")
        yield from _build(url, url, "langmem_rls", roles)
    finally:
        with psycopg.connect(pg.url, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (database,),
            )
            conn.execute(f"DROP DATABASE IF EXISTS {_ident(database)}")


# An "=" on text that also holds between any two non-empty strings, and a pg_has_role that
# says no: what a caller's own schema could put before pg_catalog for a function body that
# is parsed with the caller's search_path.
_HIJACK = (
    "CREATE FUNCTION public.lm_loose(text, text) RETURNS boolean LANGUAGE sql IMMUTABLE "
    "AS $$ SELECT $1 OPERATOR(pg_catalog.=) $2 "
    "OR ($1 OPERATOR(pg_catalog.<>) '' AND $2 OPERATOR(pg_catalog.<>) '') $$",
    "CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = text, FUNCTION = public.lm_loose)",
    "CREATE FUNCTION public.pg_has_role(name, oid, text) RETURNS boolean LANGUAGE sql "
    "AS 'SELECT false'",
    "SET search_path = public, pg_catalog",
)


def test_policy_functions_ignore_the_callers_operators(open_public: World) -> None:
    world, roles = open_public, open_public.roles
    bound = roles.make("bound")
    world.bind(bound, "acme")
    with psycopg.connect(world.url, autocommit=True) as conn:  # a registered, empty namespace
        conn.execute(
            f"INSERT INTO {world.s}.namespaces (prefix, labels, depth) "
            "VALUES ('tenants.acme.empty', '{tenants,acme,empty}', 3)"
        )
    with _connect(world.url, bound) as conn:
        for statement in _HIJACK:
            conn.execute(statement)
        assert conn.execute("SELECT 'a'::text = 'b'::text").fetchone() == (True,)
        _assert_confined(conn, world.schema, "acme")
        pruned = conn.execute(
            f"SELECT {world.s}.prune_namespaces(ARRAY['tenants.acme.empty'])"
        ).fetchone()
        assert pruned == (1,)
        conn.execute("SET search_path = pg_catalog, public")  # the same role, unhijacked
        assert _seen_as(conn, world.schema, "acme") == {"acme"}


def test_tables_without_rls_are_out_of_a_bound_roles_reach(world: World) -> None:
    roles = world.roles
    bound = roles.make("bound")
    world.bind(bound, "acme")
    member = roles.make("member")
    roles.dba(f"GRANT {_ident(bound)} TO {_ident(member)}")
    with psycopg.connect(world.url, autocommit=True) as conn:
        relations = conn.execute(
            "SELECT c.relname, c.relkind::text, c.relrowsecurity FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')",
            (world.schema,),
        ).fetchall()
    unguarded = {name for name, kind, rls in relations if not rls or kind != "r"}
    assert {"tenants", "audit_log", "audit_heads", "migrations"} <= unguarded
    for role in (bound, member):
        with _connect(world.url, role) as conn:
            for name in sorted(unguarded):
                with pytest.raises(pg_errors.InsufficientPrivilege):
                    conn.execute(f"SELECT FROM {world.s}.{_ident(name)} LIMIT 1")
            for statement in (
                f"CREATE VIEW {world.s}.everything AS SELECT * FROM {world.s}.items",
                f"CREATE TABLE {world.s}.mine (x int)",
                f"TRUNCATE {world.s}.items",
                f"DELETE FROM {world.s}.tenant_roles",
                f"CREATE TRIGGER t AFTER INSERT ON {world.s}.items "
                f"FOR EACH ROW EXECUTE FUNCTION {world.s}.count_tenant_usage()",
            ):
                with pytest.raises(pg_errors.InsufficientPrivilege):
                    conn.execute(statement)


def test_planner_statistics_stay_hidden_from_a_bound_role(world: World) -> None:
    """pg_stats shows no row of a table under RLS (histograms hold other tenants' values)."""
    bound = world.roles.make("bound")
    world.bind(bound, "acme")
    with psycopg.connect(world.url, autocommit=True) as conn:
        for table in _TENANT_TABLES:
            conn.execute(f"ANALYZE {world.s}.{table}")
    query = (
        "SELECT tablename::text, attname::text FROM pg_stats WHERE schemaname = %s "
        "UNION ALL SELECT tablename::text, '' FROM pg_stats_ext WHERE schemaname = %s"
    )
    with _connect(world.url, world.owner) as conn:
        owner_sees = {row[0] for row in conn.execute(query, (world.schema,) * 2).fetchall()}
    assert {"items", "namespaces", "chat_messages"} <= owner_sees
    with _connect(world.url, bound) as conn:
        assert conn.execute(query, (world.schema,) * 2).fetchall() == []
        with pytest.raises(pg_errors.InsufficientPrivilege):
            conn.execute("SELECT count(*) FROM pg_statistic")


def _estimate(conn: psycopg.Connection[Any], query: str) -> float:
    (plan,) = conn.execute(f"EXPLAIN (FORMAT JSON) {query}").fetchone() or (None,)
    return float(plan[0]["Plan"]["Plan Rows"])


def test_planner_estimates_reveal_what_the_readme_says(world: World) -> None:
    """The known limit, pinned: EXPLAIN estimates show which tenants exist and their size.

    The README's security model says a bound role learns this from planner statistics;
    if PostgreSQL ever hides it, this test fails and the README should say so.
    """
    bound = world.roles.make("bound")
    world.bind(bound, "acme")
    with psycopg.connect(world.url, autocommit=True) as conn:
        conn.execute(
            f"INSERT INTO {world.s}.items (prefix, key, value, created_at, updated_at) "
            "SELECT 'tenants.globex.big', 'k' || n, '{}', now(), now() "
            "FROM generate_series(1, 500) AS n"
        )
        conn.execute(f"ANALYZE {world.s}.items")
    with _connect(world.url, bound) as conn:
        assert _seen(conn, world.schema) == {"acme"}  # it reads none of globex's rows...
        items = f"SELECT 1 FROM {world.s}.items WHERE tenant = "
        big = _estimate(conn, items + "'globex'")
        absent = _estimate(conn, items + "'initech'")
        assert 400 <= big <= 600 and absent <= 2  # ...yet its plan knows globex's size

"""Tenant-scoped database roles: PostgreSQL row-level security makes isolation hold in SQL.

`setup()` of the store and of the chat histories enables row-level security on the
tables holding tenant data: `items`, `namespaces` and `vectors` (a row's tenant is the
`<id>` of a namespace ("tenants", <id>, ...), "" otherwise, in a generated `tenant`
column), `chat_sessions` and `chat_messages` (their `tenant_id`, "" when none), and
`tenant_usage` (read-only for everyone but the owner). Each table has one policy, for
every command: the row's tenant must be `{schema}.visible_tenant()`.

Who sees what:
- the tables' owner (the role that ran `setup()`, which should run the store), superusers
  and BYPASSRLS roles: every row (RLS is enabled, not forced);
- a role bound to tenants in `{schema}.tenant_roles` (by `grant_tenant_role`), and every
  role that can act as it (a member, directly or through a chain, with INHERIT or by
  `SET ROLE`): the rows of the tenant set for the transaction with
  `SET [LOCAL] langmem.tenant = '<id>'`, only if it is one of the tenants of the roles its
  current role acts as (another tenant shows nothing); with none set, the rows of its only
  tenant (nothing when it has several); never rows outside a tenant. It cannot write a
  row claiming another tenant;
- a session whose login role is such a role never counts as unbound, whatever role it
  `SET ROLE`s to or whichever SECURITY DEFINER function it calls: it sees at most the
  tenants of its current role;
- any other role with table privileges (an unbound "app role" a service may run the store
  as, which must not be able to act as any bound role): the rows of the tenant it sets, or
  the rows outside any tenant when it sets none. It can set any tenant, so it is trusted
  like the owner, only safer by default.

Rules:
- the store sets `langmem.tenant` with `set_config(..., true)` before each run of
  statements of one tenant, in the same transaction and round trip, so an app-role store
  works per tenant and a pooled connection never keeps the setting; a write batch spanning
  tenants runs in none, and needs the owner;
- maintenance (the sweepers, the tenant registry) sees every tenant only as the owner;
  run as an app role it reaches only rows outside tenants;
- `grant_tenant_role` refuses a role that could step outside its binding: one that
  bypasses RLS or can act as the owner or as a superuser / BYPASSRLS role, that can create
  roles or grant membership (CREATEROLE, ADMIN OPTION), that can act as an unbound role
  holding privileges in the schema, or that holds a privilege RLS does not govern
  (TRUNCATE, REFERENCES, TRIGGER, anything on a table without RLS, CREATE on the schema);
  see `_role_checks`. A DBA granting any of these later undoes what the binding promised;
- a binding names its role by OID: renaming the role keeps it, and a binding left by a
  dropped role binds nothing (each grant and revoke deletes such leftovers);
- binding is idempotent; call it again after setting up a feature that adds tables;
  unbinding a role's last tenant also revokes its privileges (an unbound role with
  privileges would be an app role).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from psycopg import AsyncConnection, Connection, sql
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from langmem_prod.errors import ConfigurationError, InvalidInputError, SchemaNotReadyError
from langmem_prod.store._retry import RetryPolicy
from langmem_prod.store.postgres._base import DEFAULT_SCHEMA
from langmem_prod.store.postgres._driver import AsyncRunner, SyncRunner
from langmem_prod.store.postgres._effects import Execute
from langmem_prod.store.postgres._sql import Statement, render
from langmem_prod.tenancy._role_checks import inspect_gen

_DML_TABLES = ("items", "namespaces", "vectors", "chat_sessions", "chat_messages")
_READ_TABLES = ("tenant_usage",)
_TENANT_TABLES = (*_DML_TABLES, *_READ_TABLES)
_MAX_ROLE_BYTES = 63

# For a revoke: the role's OID (NULL if none), whether RLS is set up, the tenant tables.
_IDENTIFY = """
SELECT (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = %(role)s),
  to_regclass(format('%%I.tenant_roles', %(schema)s::text)) IS NOT NULL,
  ARRAY(SELECT c.relname::text FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = %(schema)s AND c.relkind = 'r' AND c.relname = ANY(%(tables)s))
"""

# Bindings of dropped roles go first; a renamed role's label follows its new name.
_FORGET_DROPPED = (
    "DELETE FROM {s}.tenant_roles AS t "
    "WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_roles AS r WHERE r.oid = t.role_oid)"
)
_BIND = (
    "INSERT INTO {s}.tenant_roles (role, role_oid, tenant_id) VALUES (%s, %s, %s) "
    "ON CONFLICT (role_oid, tenant_id) DO UPDATE SET role = EXCLUDED.role"
)
_UNBIND = (
    "WITH gone AS (DELETE FROM {s}.tenant_roles WHERE role_oid = %s AND tenant_id = %s) "
    "SELECT count(*) FROM {s}.tenant_roles WHERE role_oid = %s AND tenant_id <> %s"
)


def _check(role: object, tenant_id: object) -> tuple[str, str]:
    if not isinstance(role, str) or not 0 < len(role.encode()) <= _MAX_ROLE_BYTES:
        raise InvalidInputError("role must be the name of a database role (1-63 bytes)")
    if not isinstance(tenant_id, str) or not tenant_id or "\x00" in tenant_id:
        raise InvalidInputError("tenant_id must be a non-empty string without NUL")
    return role, tenant_id


def _grants(schema: str, role: str, tables: list[str], *, revoke: bool) -> list[Statement]:
    who, where = sql.Identifier(role), sql.Identifier(schema)
    verb = (
        "REVOKE {privileges} ON {target} FROM {who}"
        if revoke
        else "GRANT {privileges} ON {target} TO {who}"
    )
    statements = [("USAGE", sql.SQL("SCHEMA {}").format(where))]
    for table in tables:
        privileges = "SELECT" if table in _READ_TABLES else "SELECT, INSERT, UPDATE, DELETE"
        statements.append((privileges, sql.SQL("TABLE {}.{}").format(where, sql.Identifier(table))))
    if revoke:
        statements.reverse()
    return [
        Statement(
            sql.SQL(verb)
            .format(privileges=sql.SQL(privileges), target=target, who=who)
            .as_string(None)
        )
        for privileges, target in statements
    ]


def grant_gen(schema: str, role: str, tenant_id: str) -> Generator[Execute, Any, None]:
    """Grant `role` the tenant tables of `schema` and bind it to `tenant_id`."""
    report = yield from inspect_gen(schema, role, _TENANT_TABLES)
    bind = Statement(render(_BIND, schema), (role, report.oid, tenant_id))
    forget = Statement(render(_FORGET_DROPPED, schema))
    yield Execute((*_grants(schema, role, report.tables, revoke=False), forget, bind))


def revoke_gen(schema: str, role: str, tenant_id: str) -> Generator[Execute, Any, None]:
    """Unbind `role` from `tenant_id`; with no tenant left, revoke its privileges."""
    params = {"role": role, "schema": schema, "tables": list(_TENANT_TABLES)}
    ((oid, ready, tables),) = (yield Execute((Statement(_IDENTIFY, params),)))[0]
    if oid is None:
        raise ConfigurationError(f"role {role!r} does not exist; nothing to revoke")
    if not ready:
        raise SchemaNotReadyError(f"schema {schema!r} has no row-level security; nothing to revoke")
    unbind = Statement(render(_UNBIND, schema), (oid, tenant_id, oid, tenant_id))
    forget = Statement(render(_FORGET_DROPPED, schema))
    ((left,),) = (yield Execute((forget, unbind)))[1]
    if left == 0:
        yield Execute(tuple(_grants(schema, role, tables, revoke=True)))


def _runner(source: Connection[Any] | ConnectionPool[Any], schema: str) -> SyncRunner:
    if not isinstance(source, Connection | ConnectionPool):
        raise ConfigurationError("pass a psycopg Connection or ConnectionPool (async: a-twins)")
    return SyncRunner(source, schema, None, RetryPolicy())


def _arunner(source: AsyncConnection[Any] | AsyncConnectionPool[Any], schema: str) -> AsyncRunner:
    if not isinstance(source, AsyncConnection | AsyncConnectionPool):
        raise ConfigurationError("pass a psycopg AsyncConnection or AsyncConnectionPool")
    return AsyncRunner(source, schema, None, RetryPolicy())


def grant_tenant_role(
    conn: Connection[Any] | ConnectionPool[Any],
    role: str,
    tenant_id: str,
    *,
    schema: str = DEFAULT_SCHEMA,
) -> None:
    """Make `role` a tenant-scoped role of `tenant_id`: it sees only that tenant's rows.

    Grants USAGE on the schema, SELECT/INSERT/UPDATE/DELETE on the tenant tables that
    exist (SELECT on `tenant_usage`), and binds the role in `{schema}.tenant_roles`, in
    one transaction. Run it as the tables' owner, after `setup()`. A role may be bound to
    several tenants; it then picks one per transaction with `SET LOCAL langmem.tenant`.

    Example:
        >>> import psycopg
        >>> from langmem_prod import PostgresStore
        >>> from langmem_prod.embedded import embedded_postgres
        >>> with embedded_postgres() as url, PostgresStore.from_conn_string(url) as store:
        ...     store.setup()
        ...     store.put(("tenants", "acme", "notes"), "n1", {"text": "acme's"})
        ...     store.put(("tenants", "globex", "notes"), "n1", {"text": "globex's"})
        ...     with psycopg.connect(url, autocommit=True) as admin:
        ...         _ = admin.execute("CREATE ROLE acme_app LOGIN")
        ...         grant_tenant_role(admin, "acme_app", "acme")
        ...     with psycopg.connect(url, user="acme_app", autocommit=True) as conn:
        ...         conn.execute("SELECT value->>'text' FROM langmem.items").fetchall()
        ...         _ = conn.execute("SET langmem.tenant = 'globex'")  # not its tenant
        ...         conn.execute("SELECT value->>'text' FROM langmem.items").fetchall()
        [("acme's",)]
        []

    Members of `role` (and roles that can `SET ROLE` to it) act with its binding too.

    Raises:
        ConfigurationError: the role does not exist, or could step outside its binding:
            it bypasses row-level security or can act as the owner or a role that does,
            can create roles or grant membership, can act as an unbound role holding
            privileges in the schema, or holds a privilege row-level security does not
            govern (the message says which, and what to revoke).
        SchemaNotReadyError: `setup()` has not enabled row-level security in `schema`.
    """
    role, tenant_id = _check(role, tenant_id)
    _runner(conn, schema).run_in_transaction(lambda: grant_gen(schema, role, tenant_id))


async def agrant_tenant_role(
    conn: AsyncConnection[Any] | AsyncConnectionPool[Any],
    role: str,
    tenant_id: str,
    *,
    schema: str = DEFAULT_SCHEMA,
) -> None:
    """Async `grant_tenant_role`."""
    role, tenant_id = _check(role, tenant_id)
    await _arunner(conn, schema).run_in_transaction(lambda: grant_gen(schema, role, tenant_id))


def revoke_tenant_role(
    conn: Connection[Any] | ConnectionPool[Any],
    role: str,
    tenant_id: str,
    *,
    schema: str = DEFAULT_SCHEMA,
) -> None:
    """Unbind `role` from `tenant_id`; unbinding its last tenant revokes its privileges.

    Example:
        >>> import psycopg
        >>> from langmem_prod import PostgresStore
        >>> from langmem_prod.embedded import embedded_postgres
        >>> with embedded_postgres() as url, PostgresStore.from_conn_string(url) as store:
        ...     store.setup()
        ...     with psycopg.connect(url, autocommit=True) as admin:
        ...         _ = admin.execute("CREATE ROLE acme_app LOGIN")
        ...         grant_tenant_role(admin, "acme_app", "acme")
        ...         revoke_tenant_role(admin, "acme_app", "acme")
        ...         admin.execute("SELECT has_table_privilege('acme_app', "
        ...                       "'langmem.items', 'SELECT')").fetchone()
        (False,)
    """
    role, tenant_id = _check(role, tenant_id)
    _runner(conn, schema).run_in_transaction(lambda: revoke_gen(schema, role, tenant_id))


async def arevoke_tenant_role(
    conn: AsyncConnection[Any] | AsyncConnectionPool[Any],
    role: str,
    tenant_id: str,
    *,
    schema: str = DEFAULT_SCHEMA,
) -> None:
    """Async `revoke_tenant_role`."""
    role, tenant_id = _check(role, tenant_id)
    await _arunner(conn, schema).run_in_transaction(lambda: revoke_gen(schema, role, tenant_id))

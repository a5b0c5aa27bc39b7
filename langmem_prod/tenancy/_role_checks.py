"""What makes a database role unfit to be bound to a tenant: one catalog query, its verdict.

Rules:
- a role is judged with every role it can act as (itself and every role it is a member
  of, directly or through a chain, with or without INHERIT: it can `SET ROLE` to them);
- refused, in this order: a predefined role (`pg_*`); a role that bypasses row-level
  security (superuser, BYPASSRLS) or can act as one, or as the tables' owner; a role that
  can create roles (CREATEROLE) or grant membership in one (ADMIN OPTION): it could make
  roles nobody bound; a role that can act as a role bound to no tenant holding privileges
  on the schema's tables (an application role); a role that holds, itself or through
  another, a privilege row-level security does not govern: TRUNCATE, REFERENCES or
  TRIGGER on a tenant table, anything on a table without row-level security (the tenant
  registry, the audit log, the migrations) or on a sequence, writes to `tenant_roles`,
  CREATE on the schema;
- the query only reads catalogs every role may read; it runs in the binding's
  transaction, as the tables' owner.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any, NamedTuple

from langmem_prod.errors import ConfigurationError, SchemaNotReadyError
from langmem_prod.store.postgres._effects import Execute
from langmem_prod.store.postgres._sql import Statement, render

# Whether the role exists, and whether the schema has row-level security set up.
_READY = (
    "SELECT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = %s), "
    "to_regclass(format('%%I.tenant_roles', %s::text)) IS NOT NULL"
)

# One row: the role's OID, the tenant tables present, then one column per problem naming
# the first role (and object) at fault, or NULL. `acts`: every role the role can act as
# (itself included); `rels`: the schema's tables, views and sequences.
_INSPECT = """
WITH target AS (SELECT r.oid, r.rolname FROM pg_catalog.pg_roles r WHERE r.rolname = %(role)s),
acts AS (SELECT r.oid, r.rolname, r.rolsuper, r.rolbypassrls, r.rolcreaterole
  FROM pg_catalog.pg_roles r, target t WHERE pg_catalog.pg_has_role(t.oid, r.oid, 'MEMBER')),
rels AS (SELECT c.oid, c.relname, c.relkind, c.relrowsecurity,
    c.relkind = 'S' OR c.relname = 'tenant_roles' OR NOT c.relrowsecurity AS guarded
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')),
held AS (SELECT a.oid AS role, a.rolname, c.relname, p.privilege
  FROM acts a, rels c, LATERAL unnest(CASE
    WHEN c.relname = 'tenant_roles'
      THEN ARRAY['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']
    WHEN c.relkind = 'S' THEN ARRAY['USAGE', 'SELECT', 'UPDATE']
    ELSE ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']
  END) AS p(privilege)
  WHERE CASE WHEN c.relkind = 'S' THEN has_sequence_privilege(a.oid, c.oid, p.privilege)
    ELSE has_table_privilege(a.oid, c.oid, p.privilege)
      OR (p.privilege IN ('SELECT', 'INSERT', 'UPDATE', 'REFERENCES')
          AND has_any_column_privilege(a.oid, c.oid, p.privilege)) END)
SELECT
  t.oid,
  ARRAY(SELECT c.relname::text FROM rels c WHERE c.relkind = 'r' AND c.relname = ANY(%(tables)s)),
  t.rolname LIKE 'pg\\_%%',
  (SELECT a.rolname::text FROM acts a WHERE a.rolsuper OR a.rolbypassrls LIMIT 1),
  (SELECT pg_catalog.pg_get_userbyid(c.relowner)::text FROM pg_catalog.pg_class c
    WHERE c.oid = to_regclass(format('%%I.tenant_roles', %(schema)s::text))
      AND pg_catalog.pg_has_role(t.oid, c.relowner, 'MEMBER')),
  (SELECT a.rolname::text FROM acts a WHERE a.rolcreaterole LIMIT 1),
  (SELECT ARRAY[pg_catalog.pg_get_userbyid(m.member)::text,
                pg_catalog.pg_get_userbyid(m.roleid)::text]
    FROM pg_catalog.pg_auth_members m JOIN acts a ON a.oid = m.member
    WHERE m.admin_option LIMIT 1),
  (SELECT h.rolname::text FROM held h WHERE h.role <> t.oid
    AND NOT (h.relname = 'tenant_roles' AND h.privilege = 'SELECT')
    AND NOT EXISTS (SELECT FROM {s}.tenant_roles b WHERE b.role_oid = h.role) LIMIT 1),
  (SELECT ARRAY[h.rolname::text, h.privilege, h.relname::text] FROM held h JOIN rels c
    ON c.relname = h.relname
    WHERE (c.guarded OR h.privilege IN ('TRUNCATE', 'REFERENCES', 'TRIGGER'))
      AND NOT (h.relname = 'tenant_roles' AND h.privilege = 'SELECT') LIMIT 1),
  (SELECT a.rolname::text FROM acts a
    WHERE has_schema_privilege(a.oid, %(schema)s::text, 'CREATE') LIMIT 1)
FROM target t
"""


class RoleReport(NamedTuple):
    """The answer of `_INSPECT`: the role's OID, the tenant tables, and what is wrong."""

    oid: int
    tables: list[str]
    predefined: bool
    bypasser: str | None
    owner: str | None
    creator: str | None
    admin: list[str] | None
    app_role: str | None
    privilege: list[str] | None
    creates_in_schema: str | None


def inspect_gen(
    schema: str, role: str, tables: Sequence[str]
) -> Generator[Execute, Any, RoleReport]:
    """Judge `role` for a binding in `schema`; the report of a fit role, else an error."""
    ((exists, ready),) = (yield Execute((Statement(_READY, (role, schema)),)))[0]
    if not exists:
        raise ConfigurationError(f"role {role!r} does not exist; CREATE ROLE it first")
    if not ready:
        raise SchemaNotReadyError(
            f"schema {schema!r} has no row-level security yet; call setup() of the store "
            "(or of the chat histories) with this langmem_prod first"
        )
    params = {"role": role, "schema": schema, "tables": list(tables)}
    rows = (yield Execute((Statement(render(_INSPECT, schema), params),)))[0]
    return verdict(RoleReport(*rows[0]), role, schema)


def _through(role: str, via: str) -> str:
    return "" if via == role else f" through role {via!r}"


def verdict(report: RoleReport, role: str, schema: str) -> RoleReport:
    """The report of a role fit to be bound; else the first reason it is not, raised.

    >>> fit = RoleReport(7, ["items"], False, None, None, None, None, None, None, None)
    >>> verdict(fit, "acme_app", "langmem").oid
    7
    >>> verdict(fit._replace(creator="boss"), "acme_app", "langmem")
    Traceback (most recent call last):
    ...
    langmem_prod.errors.ConfigurationError: role 'acme_app' can create roles (CREATEROLE \
through role 'boss'); a role it created would be bound to no tenant, and on PostgreSQL 15 \
and older it could grant itself any role; bind a role without CREATEROLE
    """
    if report.predefined:
        raise ConfigurationError(f"role {role!r} is a predefined role; bind a role you created")
    if report.bypasser is not None or report.owner is not None:
        via = report.bypasser or report.owner or role
        raise ConfigurationError(
            f"role {role!r} bypasses row-level security{_through(role, via)} (superuser, "
            "BYPASSRLS, or the tables' owner), so binding it to a tenant would isolate "
            "nothing; use a plain role"
        )
    if report.creator is not None:
        raise ConfigurationError(
            f"role {role!r} can create roles (CREATEROLE{_through(role, report.creator)}); "
            "a role it created would be bound to no tenant, and on PostgreSQL 15 and older "
            "it could grant itself any role; bind a role without CREATEROLE"
        )
    if report.admin is not None:
        via, granted = report.admin
        raise ConfigurationError(
            f"role {role!r} can grant membership in role {granted!r} (ADMIN OPTION"
            f"{_through(role, via)}), so it could hand that role's rights to roles bound to "
            "no tenant; revoke the ADMIN OPTION first"
        )
    if report.app_role is not None:
        raise ConfigurationError(
            f"role {role!r} can act as role {report.app_role!r}, which is bound to no tenant "
            f"and holds privileges in schema {schema!r} (it could SET ROLE to it); revoke that "
            "membership first"
        )
    if report.privilege is not None:
        via, privilege, relation = report.privilege
        raise ConfigurationError(
            f"role {role!r} holds {privilege} on {schema}.{relation}{_through(role, via)}, "
            "which row-level security does not govern; revoke it first"
        )
    if report.creates_in_schema is not None:
        raise ConfigurationError(
            f"role {role!r} may CREATE in schema {schema!r}"
            f"{_through(role, report.creates_in_schema)}: objects it made there could stand "
            "in for the store's; revoke CREATE on the schema first"
        )
    return report

"""Row-level security: the tenant of a row, the per-transaction setting, the SQL helpers.

Rules:
- a row's tenant is the second label of a namespace under "tenants" (prefix text
  "tenants.<id>..."), and "" for every other namespace; chat histories store theirs in
  `tenant_id` ("" when none). The SQL in `TENANT_OF_PREFIX` and `tenant_of` agree;
- a binding in `{s}.tenant_roles` names its role by OID (the name is a label), so renaming
  a role keeps its binding and a dropped role's binding matches no role created later;
- a role *acts as* another when it is that role, or can use its privileges or SET ROLE to
  it (PostgreSQL 16+: USAGE, SET or ADMIN OPTION; up to 15: any membership), directly or
  through a chain; the caller is *bound* when its current role or its session role acts as
  a bound role, and its tenants are those of the bound roles its current role acts as
  (privileges follow `current_user`, so tenants do too; the session only takes trust away);
- `{s}.current_tenant()` is `langmem.tenant` as set for the transaction (NULL when unset or
  empty) for an unbound caller; for a bound one it is the setting only when it names one of
  its tenants (else NULL), or its only tenant when unset, so no `SET`, `SET ROLE` or
  SECURITY DEFINER function widens a bound session's view;
- `{s}.visible_tenant()` is what the policies compare rows with: `current_tenant()`, or ""
  (the rows outside any tenant) for an unbound caller when none is set; NULL matches no
  row, so a bound caller never sees rows outside its tenants;
- both functions run with `search_path = pg_catalog, pg_temp` and name every function
  and operator with its schema (`OPERATOR(pg_catalog.=)`): a function's body is parsed
  with the caller's settings, so a role that can CREATE in some schema could otherwise
  shadow `=` or `pg_has_role` with its own (a policy's own expression is resolved once,
  when it is created). They reach bindings through the caller's memberships
  (`pg_auth_members`, then the primary key), so their cost does not grow with the number
  of bound roles; they are plpgsql with generic plans, prepared once per session;
- RLS is enabled, not forced: the tables' owner (the service role that ran `setup()`),
  superusers and BYPASSRLS roles see every row; everyone else goes through the policies;
- the store sets the tenant with `set_config(..., true)` in the same transaction as the
  statements it scopes (one pipeline), so a pooled connection never keeps it.
"""

from __future__ import annotations

from collections.abc import Sequence

from langmem_prod.store._tenant import tenant_of_text
from langmem_prod.store.postgres._effects import Execute
from langmem_prod.store.postgres._sql import Statement

# Migration text goes through psycopg's placeholder parsing, hence "%%".
TENANT_OF_PREFIX = "CASE WHEN prefix LIKE 'tenants.%%' THEN split_part(prefix, '.', 2) ELSE '' END"
SET_TENANT = "SELECT set_config('langmem.tenant', %s, true)"

_CURRENT_TENANT = """
CREATE FUNCTION {s}.current_tenant() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $fn$
  SELECT CASE
    WHEN NOT EXISTS (SELECT FROM {s}.tenant_roles r WHERE r.role = current_user) THEN s.t
    WHEN s.t IS NULL THEN (SELECT min(r.tenant_id) FROM {s}.tenant_roles r
                           WHERE r.role = current_user HAVING count(*) = 1)
    WHEN EXISTS (SELECT FROM {s}.tenant_roles r
                 WHERE r.role = current_user AND r.tenant_id = s.t) THEN s.t
  END
  FROM (SELECT nullif(current_setting('langmem.tenant', true), '') AS t) AS s
$fn$
"""
_VISIBLE_TENANT = """
CREATE FUNCTION {s}.visible_tenant() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $fn$
  SELECT coalesce({s}.current_tenant(), CASE WHEN NOT EXISTS
    (SELECT FROM {s}.tenant_roles r WHERE r.role = current_user) THEN '' END)
$fn$
"""

# Who may act as a role: PostgreSQL 16 split membership into USAGE (inherit), SET and ADMIN;
# up to 15 every member could SET ROLE. Decided when evaluated, so pg_upgrade keeps it right.
ACTS_MODE = (
    "CASE WHEN pg_catalog.current_setting('server_version_num')::pg_catalog.int4 "
    "OPERATOR(pg_catalog.>=) 160000 THEN 'USAGE, SET, MEMBER WITH ADMIN OPTION' "
    "ELSE 'MEMBER' END"
)

# One body for both functions: plpgsql, whose plans are prepared once per session (a SQL
# function's body is planned again on every call before PostgreSQL 18), and kept generic
# (planning a custom plan per call would cost more than the lookup itself). `reach`: the
# current and the session role, and every role either is a member of (all edges of
# pg_auth_members; the recursion only runs for a caller with memberships). Over the
# bindings of those roles (by the primary key; RLS on tenant_roles also drops the rows
# neither role acts as): is the caller bound, and of the tenants its current role acts
# as, the least, the greatest, and whether the one set is among them.
_TENANT_FUNCTION = f"""
CREATE OR REPLACE FUNCTION {{{{s}}}}.{{name}}() RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp SET plan_cache_mode = force_generic_plan AS $fn$
DECLARE
  t text := pg_catalog.current_setting('langmem.tenant', true);
  me oid := pg_catalog.quote_ident(current_user)::pg_catalog.regrole;
  ses oid := pg_catalog.quote_ident(session_user)::pg_catalog.regrole;
  mode text := {ACTS_MODE};
  reach oid[] := ARRAY[me, ses];
  bound boolean;
  lo text;
  hi text;
  has boolean;
BEGIN
  IF t OPERATOR(pg_catalog.=) '' THEN
    t := NULL;
  END IF;
  IF EXISTS (SELECT FROM pg_catalog.pg_auth_members AS e
             WHERE e.member OPERATOR(pg_catalog.=) ANY (reach)) THEN
    reach := ARRAY(
      WITH RECURSIVE up(oid) AS (
          SELECT u.oid FROM pg_catalog.unnest(reach) AS u(oid)
        UNION
          SELECT e.roleid FROM pg_catalog.pg_auth_members AS e
          JOIN up ON e.member OPERATOR(pg_catalog.=) up.oid)
      SELECT up.oid FROM up);
  END IF;
  SELECT pg_catalog.count(*) OPERATOR(pg_catalog.>) 0,
      pg_catalog.min(a.tenant_id) FILTER (WHERE a.acts),
      pg_catalog.max(a.tenant_id) FILTER (WHERE a.acts),
      pg_catalog.bool_or(a.tenant_id OPERATOR(pg_catalog.=) t) FILTER (WHERE a.acts)
    INTO bound, lo, hi, has
    FROM (SELECT b.tenant_id, pg_catalog.pg_has_role(current_user, b.role_oid, mode) AS acts
          FROM {{{{s}}}}.tenant_roles AS b
          WHERE b.role_oid OPERATOR(pg_catalog.=) ANY (reach)) AS a;
  IF NOT bound THEN
    RETURN {{unbound}};
  ELSIF t IS NULL THEN
    RETURN CASE WHEN lo OPERATOR(pg_catalog.=) hi THEN lo END;
  END IF;
  RETURN CASE WHEN has THEN t END;
END
$fn$
"""
_READ_BINDINGS = f"""CREATE POLICY reachable_bindings ON {{s}}.tenant_roles FOR SELECT USING (
    pg_catalog.pg_has_role(current_user, role_oid, (SELECT {ACTS_MODE}))
    OR pg_catalog.pg_has_role(session_user, role_oid, (SELECT {ACTS_MODE})))"""

# Migration 2 of the "rls" track: bindings by OID that follow role membership; pinned,
# schema-qualified policy functions (replaced in place: the policies keep calling them).
RLS_MEMBERSHIP_STATEMENTS: tuple[str, ...] = (
    "ALTER TABLE {s}.tenant_roles ADD COLUMN role_oid oid",
    "UPDATE {s}.tenant_roles AS t SET role_oid = r.oid FROM pg_catalog.pg_roles AS r "
    "WHERE r.rolname = t.role",
    # Bindings of roles dropped before this migration bind nothing any more.
    "DELETE FROM {s}.tenant_roles WHERE role_oid IS NULL",
    "ALTER TABLE {s}.tenant_roles ALTER COLUMN role_oid SET NOT NULL, "
    "DROP CONSTRAINT tenant_roles_pkey, ADD PRIMARY KEY (role_oid, tenant_id)",
    "DROP POLICY own_bindings ON {s}.tenant_roles",
    _READ_BINDINGS,
    _TENANT_FUNCTION.format(name="current_tenant", unbound="t"),
    _TENANT_FUNCTION.format(name="visible_tenant", unbound="coalesce(t, '')"),
)

# The "rls" migration track: shared by the store and the chat histories, applied first.
RLS_TRACK_STATEMENTS: tuple[str, ...] = (
    """CREATE TABLE {s}.tenant_roles (
        role name NOT NULL,
        tenant_id text COLLATE "C" NOT NULL,
        PRIMARY KEY (role, tenant_id))""",
    # Each role may read its own bindings (current_tenant() runs as the caller).
    "ALTER TABLE {s}.tenant_roles ENABLE ROW LEVEL SECURITY",
    "CREATE POLICY own_bindings ON {s}.tenant_roles FOR SELECT USING (role = current_user)",
    "GRANT SELECT ON {s}.tenant_roles TO PUBLIC",
    _CURRENT_TENANT,
    _VISIBLE_TENANT,
)


def policy_statements(table: str, column: str) -> tuple[str, ...]:
    """Enable RLS on `{s}.<table>` with one policy: `column` is the visible tenant."""
    check = f"{column} = (SELECT {{s}}.visible_tenant())"
    return (
        f"ALTER TABLE {{s}}.{table} ENABLE ROW LEVEL SECURITY",
        f"CREATE POLICY tenant_isolation ON {{s}}.{table} USING ({check}) WITH CHECK ({check})",
    )


def tenant_column(table: str) -> str:
    """Add the generated `tenant` column, derived from `prefix`, to `{s}.<table>`."""
    return (
        f'ALTER TABLE {{s}}.{table} ADD COLUMN tenant text COLLATE "C" NOT NULL '
        f"GENERATED ALWAYS AS ({TENANT_OF_PREFIX}) STORED"
    )


def tenant_of(prefix: str) -> str:
    """The tenant of a namespace's text form ("" outside "tenants"), as the SQL derives it.

    >>> tenant_of("tenants.acme.ada.notes"), tenant_of("users.u1"), tenant_of("tenants")
    ('acme', '', '')
    """
    return tenant_of_text(prefix) or ""


def set_tenant(tenant: str) -> Statement:
    """Set the tenant for the rest of the transaction ("" sets none)."""
    return Statement(SET_TENANT, (tenant,))


def scoped(
    parts: Sequence[tuple[str, Statement]], head: Sequence[Statement] = ()
) -> tuple[Execute, list[int]]:
    """Run the parts after `head`, each in its tenant; and where each part's answer lands.

    Parts run in order in one transaction; a `set_tenant` goes before every part whose
    tenant differs from the one before (none is set at first).

    >>> effect, at = scoped([("", Statement("A")), ("acme", Statement("B"))])
    >>> [s.sql[:6] for s in effect.statements], effect.tenant_settings, at
    (['A', 'SELECT', 'B'], (1,), [0, 2])
    """
    statements = list(head)
    positions: list[int] = []
    settings: list[int] = []
    current = ""
    for tenant, statement in parts:
        if tenant != current:
            settings.append(len(statements))
            statements.append(set_tenant(tenant))
            current = tenant
        positions.append(len(statements))
        statements.append(statement)
    return Execute(tuple(statements), tuple(settings)), positions


def in_tenant(tenant: str, statements: Sequence[Statement]) -> Execute:
    """Run `statements` in `tenant` ("" sets none); their answers start at `bool(tenant)`."""
    if not tenant:
        return Execute(tuple(statements))
    return Execute((set_tenant(tenant), *statements), (0,))

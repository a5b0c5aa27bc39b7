"""Row-level security: the tenant of a row, the per-transaction setting, the SQL helpers.

Rules:
- a row's tenant is the second label of a namespace under "tenants" (prefix text
  "tenants.<id>..."), and "" for every other namespace; chat histories store theirs in
  `tenant_id` ("" when none). The SQL in `TENANT_OF_PREFIX` and `tenant_of` agree;
- `{s}.current_tenant()` is `langmem.tenant` as set for the transaction (NULL when unset or
  empty); for a role bound to tenants in `{s}.tenant_roles` it is the setting only when it
  names one of the role's tenants (else NULL), or the role's only tenant when unset, so a
  tenant-scoped role cannot widen its view with `SET langmem.tenant`;
- `{s}.visible_tenant()` is what the policies compare rows with: `current_tenant()`, or ""
  (the rows outside any tenant) for a role bound to no tenant when none is set; NULL
  matches no row, so a bound role never sees rows outside its tenants;
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

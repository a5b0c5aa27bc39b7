"""Tenant usage accounting on PostgreSQL: statement-level triggers on `items`, as migration text.

Rules:
- an item counts towards its tenant (the generated `tenant` column, the one row-level
  security checks) when that tenant has a row in `{s}.tenant_usage`; its size is
  `octet_length(value::text)`, the measure the Redis store mirrors;
- usage is accounted once per statement and kind of change: an AFTER ... FOR EACH
  STATEMENT trigger per INSERT, UPDATE and DELETE reads the statement's transition
  tables, sums the change per tenant and updates each usage row once. (A per-row trigger
  updated the same usage row once per item: each update walked every version the
  transaction had made of it, so a batch cost grew with the square of its size.) An
  `INSERT ... ON CONFLICT DO UPDATE` fires the UPDATE trigger for its replaced rows and
  the INSERT trigger for its new ones; several modifying CTEs on `items` share each
  kind's firing; TTL sweeps, cascades and compare-and-set replacements are ordinary
  statements; TRUNCATE is not counted;
- a firing locks the usage rows it changes in tenant order before updating them, so
  racing statements never deadlock on them within a firing; the locks are held to the
  end of the transaction, so a tenant's writers queue there and usage stays exact.
  A statement spanning tenants may lock a tenant in one kind's firing and another in
  the next: two such statements racing can deadlock, which PostgreSQL detects (after
  `deadlock_timeout`) and the store retries;
- a tenant whose items or bytes grew in a firing and now exceed a limit fails the
  statement with SQLSTATE LMQ01 (nothing it wrote stays); a change that does not grow a
  measure never fails on it, so updates and deletes succeed after a limit is lowered.
  Each firing is checked on its own: in the store's write statement PostgreSQL fires
  the INSERT trigger before the DELETE one, so a batch that deletes and puts at the
  limit is refused although its net change would fit (as with the per-row trigger);
- the function runs as its owner (SECURITY DEFINER: writers may not touch
  `tenant_usage`) with `search_path = pg_catalog, pg_temp` and qualified names, so no
  schema a writer can create objects in is ever searched.
"""

from __future__ import annotations

# Migration text goes through psycopg's placeholder parsing, hence every "%" is "%%".
# Each branch sums one kind of change per tenant that has a usage row; the outer WHERE
# keeps only tenants whose usage moves (access statistics and TTL refreshes move none).
_DELTAS = """
    SELECT pg_catalog.array_agg(c.tenant ORDER BY c.tenant),
           pg_catalog.array_agg(c.items ORDER BY c.tenant),
           pg_catalog.array_agg(c.bytes ORDER BY c.tenant)
      INTO tenants, d_items, d_bytes
      FROM (SELECT r.tenant, pg_catalog.sum(r.n)::bigint AS items,
                   pg_catalog.sum(r.n * pg_catalog.octet_length(r.value::text))::bigint AS bytes
              FROM ({rows}) AS r
             WHERE r.tenant IN (SELECT u.tenant_id FROM {s}.tenant_usage u)
             GROUP BY r.tenant) AS c
     WHERE c.items <> 0 OR c.bytes <> 0;"""
_NEW_ROWS = "SELECT n.tenant, n.value, 1 AS n FROM new_items n"
_OLD_ROWS = "SELECT o.tenant, o.value, -1 AS n FROM old_items o"

ACCOUNT_FUNCTION = (
    """
CREATE FUNCTION {s}.account_tenant_usage() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  tenants text[];
  d_items bigint[];
  d_bytes bigint[];
  over record;
BEGIN
  IF NOT EXISTS (SELECT FROM {s}.tenant_usage) THEN
    RETURN NULL;
  END IF;
  IF TG_OP = 'INSERT' THEN"""
    + _DELTAS.replace("{rows}", _NEW_ROWS)
    + """
  ELSIF TG_OP = 'DELETE' THEN"""
    + _DELTAS.replace("{rows}", _OLD_ROWS)
    + """
  ELSE"""
    + _DELTAS.replace("{rows}", _NEW_ROWS + " UNION ALL " + _OLD_ROWS)
    + """
  END IF;
  IF tenants IS NULL THEN
    RETURN NULL;
  END IF;
  -- One lock order for every statement: by tenant id.
  PERFORM FROM {s}.tenant_usage u WHERE u.tenant_id = ANY (tenants)
    ORDER BY u.tenant_id FOR UPDATE;
  WITH changed AS (
    UPDATE {s}.tenant_usage u SET items = u.items + d.items, bytes = u.bytes + d.bytes
      FROM ROWS FROM (pg_catalog.unnest(tenants), pg_catalog.unnest(d_items),
                      pg_catalog.unnest(d_bytes)) AS d(tenant, items, bytes)
     WHERE u.tenant_id = d.tenant
    RETURNING u.tenant_id, u.items, u.bytes, u.max_items, u.max_bytes,
              d.items AS grew_items, d.bytes AS grew_bytes)
  SELECT * INTO over FROM changed c
   WHERE (c.grew_items > 0 AND c.items > c.max_items)
      OR (c.grew_bytes > 0 AND c.bytes > c.max_bytes)
   ORDER BY c.tenant_id LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'tenant %% is over its quota: %% of %% items, %% of %% bytes',
      over.tenant_id, over.items, coalesce(over.max_items::text, 'unlimited'),
      over.bytes, coalesce(over.max_bytes::text, 'unlimited')
      USING ERRCODE = 'LMQ01';
  END IF;
  RETURN NULL;
END
$fn$
"""
)

# Core migration 4: the per-row trigger of migration 2 gives way to one trigger per kind
# of change. Usage rows keep their values: both count the same rows, by the same measure.
STATEMENT_ACCOUNTING: tuple[str, ...] = (
    "DROP TRIGGER items_tenant_usage ON {s}.items",
    "DROP FUNCTION {s}.count_tenant_usage()",
    ACCOUNT_FUNCTION,
    "CREATE TRIGGER items_usage_insert AFTER INSERT ON {s}.items "
    "REFERENCING NEW TABLE AS new_items "
    "FOR EACH STATEMENT EXECUTE FUNCTION {s}.account_tenant_usage()",
    "CREATE TRIGGER items_usage_update AFTER UPDATE ON {s}.items "
    "REFERENCING OLD TABLE AS old_items NEW TABLE AS new_items "
    "FOR EACH STATEMENT EXECUTE FUNCTION {s}.account_tenant_usage()",
    "CREATE TRIGGER items_usage_delete AFTER DELETE ON {s}.items "
    "REFERENCING OLD TABLE AS old_items "
    "FOR EACH STATEMENT EXECUTE FUNCTION {s}.account_tenant_usage()",
)

"""The one statement that applies a batch's writes: deletes, upserts, registry, vectors.

Rules:
- everything a batch writes is one statement (CTEs around one SELECT), so it commits or
  fails as a whole;
- each namespace a batch writes has a reader/writer advisory lock, taken before any row
  is touched and in namespace order (so batches never deadlock on them): puts take it
  shared, deletes exclusive. Concurrent puts never wait for each other; a delete waits
  for in-flight writes to its namespace, so the registry prune that follows it (same
  transaction, fresh snapshot) sees every committed item and never races another delete;
- a put registers its namespace (insert if missing) under that lock;
- a namespace that receives an item with a TTL is flagged `expiring`: only flagged
  namespaces need the "has a live item" check when listed. The flag is best effort: a TTL
  put racing the namespace's first registration may miss it, and then a namespace whose
  items have all expired is listed until the sweeper deletes them (one sweep interval);
- re-putting an item replaces its vectors: new fields are upserted, stale ones deleted;
- a lone put without vectors uses a scalar statement: no arrays to build or unnest.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from psycopg import sql

from langmem_prod.store._ops import WritePlan
from langmem_prod.store._ttl import expires_at
from langmem_prod.store.postgres._sql import Statement, lock_namespace, render

_UPSERT_SET = (
    "ON CONFLICT (prefix, key) DO UPDATE SET value = excluded.value, "
    "updated_at = excluded.updated_at, ttl_minutes = excluded.ttl_minutes, "
    "expires_at = excluded.expires_at"
)
_COLUMNS = "(prefix, key, value, created_at, updated_at, ttl_minutes, expires_at)"
# Referenced by every modifying CTE: the locks are all taken before any row is touched.
_AFTER_LOCKS = "(SELECT count(*) FROM locked) > 0"

# The registration is always attempted: ON CONFLICT checks the latest committed state,
# while a NOT EXISTS shortcut would read the statement's snapshot, taken before the lock,
# and could miss a prune that committed while this statement waited for the lock.
_SINGLE_PUT = (
    "WITH locked AS MATERIALIZED (SELECT pg_advisory_xact_lock_shared("
    "hashtextextended({lock} || %(prefix)s, 0))), "
    "registered AS (INSERT INTO {s}.namespaces (prefix, labels, depth, expiring) "
    "SELECT %(prefix)s, string_to_array(%(prefix)s, '.'), "
    "cardinality(string_to_array(%(prefix)s, '.')), {expiring} FROM locked "
    "ON CONFLICT (prefix) DO NOTHING){flag} "
    "INSERT INTO {s}.items AS i " + _COLUMNS + " SELECT %(prefix)s, %(key)s, %(value)s::jsonb, "
    "%(now)s, %(now)s, {ttl} FROM locked " + _UPSERT_SET
)
_SINGLE_FLAG = (
    ", flagged AS (UPDATE {s}.namespaces SET expiring = true "
    "WHERE prefix = %(prefix)s AND NOT expiring AND EXISTS (SELECT FROM locked))"
)

_LOCK_CTE = (
    "locked AS MATERIALIZED (SELECT CASE WHEN l.exclusive "
    "THEN pg_advisory_xact_lock(hashtextextended(%s || l.prefix, 0)) "
    "ELSE pg_advisory_xact_lock_shared(hashtextextended(%s || l.prefix, 0)) END "
    "FROM unnest(%b::text[], %b::bool[]) WITH ORDINALITY AS l(prefix, exclusive, n) "
    "ORDER BY l.n)"
)
_DELETE_CTE = (
    "deleted AS (DELETE FROM {s}.items i USING unnest(%b::text[], %b::text[]) AS d(prefix, key) "
    "WHERE i.prefix = d.prefix AND i.key = d.key AND " + _AFTER_LOCKS + ")"
)
_ROWS_CTE = (
    "rows AS (SELECT * FROM unnest(%b::text[], %b::text[], %b::jsonb[], %b::float8[], "
    "%b::timestamptz[]) AS t(prefix, key, value, ttl_minutes, expires_at))"
)
_ROWS_NO_TTL_CTE = (
    "rows AS (SELECT t.*, NULL::float8 AS ttl_minutes, NULL::timestamptz AS expires_at "
    "FROM unnest(%b::text[], %b::text[], %b::jsonb[]) AS t(prefix, key, value))"
)
_PUT_NAMESPACES_CTE = (
    "put_namespaces AS (SELECT prefix, bool_or(ttl_minutes IS NOT NULL) AS expiring "
    "FROM rows GROUP BY prefix)"
)
_REGISTER_CTE = (
    "registered AS (INSERT INTO {s}.namespaces (prefix, labels, depth, expiring) "
    "SELECT prefix, string_to_array(prefix, '.'), cardinality(string_to_array(prefix, '.')), "
    "expiring FROM put_namespaces WHERE " + _AFTER_LOCKS + " ON CONFLICT (prefix) DO NOTHING)"
)
_FLAG_CTE = (
    "flagged AS (UPDATE {s}.namespaces n SET expiring = true FROM put_namespaces p "
    "WHERE n.prefix = p.prefix AND p.expiring AND NOT n.expiring AND " + _AFTER_LOCKS + ")"
)
_UPSERT_CTE = (
    "upserted AS (INSERT INTO {s}.items AS i " + _COLUMNS + " "
    "SELECT prefix, key, value, %s, %s, ttl_minutes, expires_at FROM rows WHERE "
    + _AFTER_LOCKS
    + " "
    + _UPSERT_SET
    + ")"
)
_NEW_VECTORS_CTE = (
    "new_vectors AS (SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[]) "
    "AS t(prefix, key, field, embedding))"
)
_STALE_VECTORS_CTE = (
    "stale_vectors AS (DELETE FROM {s}.vectors v USING rows r "
    "WHERE v.prefix = r.prefix AND v.key = r.key AND " + _AFTER_LOCKS + " AND NOT EXISTS "
    "(SELECT 1 FROM new_vectors n WHERE n.prefix = v.prefix AND n.key = v.key "
    "AND n.field = v.field))"
)
_UPSERT_VECTORS_CTE = (
    "upserted_vectors AS (INSERT INTO {s}.vectors (prefix, key, field, embedding) "
    "SELECT prefix, key, field, embedding::{vt} FROM new_vectors WHERE " + _AFTER_LOCKS + " "
    "ON CONFLICT (prefix, key, field) DO UPDATE SET embedding = excluded.embedding)"
)


def write_statement(
    schema: str,
    vector_type: str | None,
    writes: Sequence[WritePlan],
    vectors: dict[str, str],
    now: datetime,
) -> Statement:
    """All of a batch's deletes and upserts (with their vectors) as one statement."""
    if len(writes) == 1 and writes[0].value_json is not None and vector_type is None:
        return _single_put(schema, writes[0], now)
    lock = lock_namespace(schema)
    puts = [w for w in writes if w.value_json is not None]
    deletes = [w for w in writes if w.value_json is None]
    exclusive = {w.prefix for w in deletes}
    prefixes = sorted(exclusive | {w.prefix for w in puts})
    ctes = [_LOCK_CTE]
    params: list[Any] = [lock, lock, prefixes, [p in exclusive for p in prefixes]]
    if deletes:
        ctes.append(_DELETE_CTE)
        params += [[w.prefix for w in deletes], [w.key for w in deletes]]
    if puts:
        params += [[w.prefix for w in puts], [w.key for w in puts], [w.value_json for w in puts]]
        if any(w.ttl_minutes is not None for w in puts):
            ctes += [_ROWS_CTE, _PUT_NAMESPACES_CTE, _REGISTER_CTE, _FLAG_CTE, _UPSERT_CTE]
            params += [
                [w.ttl_minutes for w in puts],
                [expires_at(now, w.ttl_minutes) for w in puts],
            ]
        else:
            ctes += [_ROWS_NO_TTL_CTE, _PUT_NAMESPACES_CTE, _REGISTER_CTE, _UPSERT_CTE]
        params += [now, now]
        if vector_type is not None:
            fields = [(w, f, vectors[t]) for w in puts for f, t in (w.texts or ())]
            ctes += [_NEW_VECTORS_CTE, _STALE_VECTORS_CTE, _UPSERT_VECTORS_CTE]
            params += [
                [w.prefix for w, _, _ in fields],
                [w.key for w, _, _ in fields],
                [f for _, f, _ in fields],
                [v for _, _, v in fields],
            ]
    text = "WITH " + ", ".join(ctes) + " SELECT 1"
    return Statement(render(text.replace("{vt}", vector_type or "vector"), schema), params)


def _single_put(schema: str, put: WritePlan, now: datetime) -> Statement:
    params: dict[str, Any] = {"prefix": put.prefix, "key": put.key, "value": put.value_json}
    params["now"] = now
    if put.ttl_minutes is not None:
        params["ttl"] = put.ttl_minutes
        params["expires"] = expires_at(now, put.ttl_minutes)
    return Statement(_single_put_sql(schema, put.ttl_minutes is not None), params)


@functools.lru_cache(maxsize=64)
def _single_put_sql(schema: str, expiring: bool) -> str:
    """The scalar put statement, rendered once per schema and TTL-ness."""
    lock = sql.Literal(lock_namespace(schema)).as_string(None)
    text = (
        _SINGLE_PUT.replace("{lock}", lock)
        .replace("{expiring}", "true" if expiring else "false")
        .replace("{flag}", _SINGLE_FLAG if expiring else "")
        .replace("{ttl}", "%(ttl)s, %(expires)s" if expiring else "NULL, NULL")
    )
    return render(text, schema)

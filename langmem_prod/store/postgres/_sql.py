"""SQL statements of the Postgres store for reads and maintenance, built with no I/O.

Rules:
- the schema name is quoted with `psycopg.sql.Identifier`; every value is a bound
  parameter; the clock is a parameter too (never the server's `now()`);
- expired rows are filtered out of every read, whether swept or not;
- namespaces are listed from the registry, in label order; only namespaces flagged
  `expiring` are checked for a live item;
- writes are built in `_write_sql`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from psycopg import sql

from langmem_prod.store._access import AccessRecord
from langmem_prod.store._index import Distance
from langmem_prod.store._namespace import descendant_range
from langmem_prod.store._ops import ListPlan, SearchPlan
from langmem_prod.store.postgres._distance import DISTANCE_SQL
from langmem_prod.store.postgres._filter_sql import condition_sql

ROW_COLUMNS = (
    "{alias}prefix, {alias}key, {alias}value::text, {alias}created_at, {alias}updated_at, "
    "{alias}ttl_minutes IS NOT NULL"
)
"""Every item read returns these columns: prefix, key, value (JSON text, decoded by
`decode_value`, faster than psycopg's jsonb loader), created_at, updated_at, has_ttl."""

_LIVE = "({alias}expires_at IS NULL OR {alias}expires_at > %s)"


class Statement(NamedTuple):
    """One SQL statement and its positional parameters."""

    sql: str
    params: Sequence[Any] | Mapping[str, Any] = ()
    prepare: bool | None = None
    """psycopg's `prepare`: None prepares after a few runs; False plans each run for its
    own parameters (when a generic plan would be poor)."""


def lock_namespace(schema: str) -> str:
    """The text every namespace lock key of `schema` starts with (writes and the pruner)."""
    return f"langmem_prod:{schema}:"


@functools.lru_cache(maxsize=1024)
def render(template: str, schema: str) -> str:
    """Replace every `{s}` in `template` with the quoted schema name."""
    return template.replace("{s}", sql.Identifier(schema).as_string(None))


def _cols(alias: str = "") -> str:
    return ROW_COLUMNS.format(alias=alias)


@dataclass(frozen=True)
class PgSql:
    """Statement builders for one schema (and vector type, when indexed)."""

    schema: str
    vector_type: str | None = None
    distance: Distance = "cosine"
    _fixed: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        s = self.schema
        self._fixed.update(
            get_one=render(
                f"SELECT {_cols()} FROM {{s}}.items WHERE prefix = %s AND key = %s AND "
                + _LIVE.format(alias=""),
                s,
            ),
            get_many=render(
                f"SELECT {_cols('i.')} FROM unnest(%b::text[], %b::text[]) AS q(prefix, key) "
                "JOIN {s}.items i ON i.prefix = q.prefix AND i.key = q.key WHERE "
                + _LIVE.format(alias="i."),
                s,
            ),
            prune=render("SELECT {s}.prune_namespaces(%b::text[])", s),
            prune_all=render(_PRUNE_ALL, s),
            sweep=render(_SWEEP, s),
            flush=render(_FLUSH, s),
        )

    # Reads -----------------------------------------------------------------

    def get(self, keys: Sequence[tuple[str, str]], now: datetime) -> Statement:
        """Read live items by (prefix, key); one statement whatever the namespaces."""
        if len(keys) == 1:
            ((prefix, key),) = keys
            return Statement(self._fixed["get_one"], (prefix, key, now))
        return Statement(self._fixed["get_many"], ([p for p, _ in keys], [k for _, k in keys], now))

    def _where(
        self, plan: SearchPlan, now: datetime, *, items: str = "", prefix: str = ""
    ) -> tuple[str, list[Any]]:
        """The WHERE clause of a search: live, under the prefix, matching the filter."""
        clauses, params = [_LIVE.format(alias=items)], list[Any]([now])
        if plan.prefix is not None:
            low, high = descendant_range(plan.prefix)
            clauses.append(
                f"({prefix}prefix = %s OR ({prefix}prefix >= %s AND {prefix}prefix < %s))"
            )
            params += [plan.prefix, low, high]
        for condition in plan.conditions:
            predicate, condition_params = condition_sql(condition, f"{items}value")
            clauses.append(predicate)
            params += condition_params
        return " AND ".join(clauses), params

    def search(self, plan: SearchPlan, now: datetime) -> Statement:
        """Filter a namespace subtree, newest first, in the database."""
        where, params = self._where(plan, now)
        text = render(
            f"SELECT {_cols()} FROM {{s}}.items WHERE {where} "
            "ORDER BY updated_at DESC, prefix, key LIMIT %s OFFSET %s",
            self.schema,
        )
        return Statement(text, [*params, plan.limit, plan.offset])

    def vector_search(
        self, plan: SearchPlan, vector: str, candidates: int, now: datetime
    ) -> Statement:
        """Rank items by their best vector's similarity to `vector` (see `_distance`).

        The first rows come from the HNSW index in distance order (`candidates` of them);
        items are then max-pooled and paged. The last two columns count the candidate
        vectors and distinct items, so the caller can tell when to ask for more.
        """
        where, params = self._where(plan, now, items="i.", prefix="v.")
        rule = DISTANCE_SQL[self.distance]
        distance = f"v.embedding {rule.operator} %s::{self.vector_type}"
        text = render(
            f"WITH hits AS MATERIALIZED (SELECT v.prefix, v.key, {distance} AS distance "
            "FROM {s}.vectors v JOIN {s}.items i ON i.prefix = v.prefix AND i.key = v.key "
            f"WHERE {where} ORDER BY {distance} LIMIT %s), "
            "best AS (SELECT DISTINCT ON (prefix, key) prefix, key, distance FROM hits "
            "ORDER BY prefix, key, distance), "
            "page AS (SELECT prefix, key, distance FROM best "
            "ORDER BY distance, prefix, key LIMIT %s OFFSET %s) "
            f"SELECT {_cols('i.')}, {rule.score.format(d='p.distance')}, "
            "(SELECT count(*) FROM hits), (SELECT count(*) FROM best) "
            "FROM (SELECT 1) AS one LEFT JOIN (page p JOIN {s}.items i "
            "ON i.prefix = p.prefix AND i.key = p.key) ON true "
            "ORDER BY p.distance, p.prefix, p.key",
            self.schema,
        )
        return Statement(text, [vector, *params, vector, candidates, plan.limit, plan.offset])

    def unscored_search(
        self, plan: SearchPlan, now: datetime, limit: int, offset: int
    ) -> Statement:
        """Items without vectors under the search, newest first (they follow scored items)."""
        where, params = self._where(plan, now, items="i.", prefix="i.")
        text = render(
            f"SELECT {_cols('i.')}, NULL FROM {{s}}.items i WHERE {where} AND NOT EXISTS "
            "(SELECT 1 FROM {s}.vectors v WHERE v.prefix = i.prefix AND v.key = i.key) "
            "ORDER BY i.updated_at DESC, i.prefix, i.key LIMIT %s OFFSET %s",
            self.schema,
        )
        return Statement(text, [*params, limit, offset])

    def list_namespaces(self, plan: ListPlan, now: datetime) -> Statement:
        """List registered namespaces that hold a live item, in label order.

        Both shapes walk the `labels` index in order and stop at the page's end: a fixed
        prefix is a range of `labels`; with `max_depth`, each distinct truncated
        namespace is one index probe past the previous one (a loose index scan), so the
        cost follows the namespaces listed, not the registry's size. A full listing is never
        prepared: a generic plan guesses a prefix's range small and sorts all of it instead
        (the walk's probes, LIMIT 1 each, keep to the index either way).
        """
        where, params = _list_where(plan, now)
        if plan.max_depth is None:
            text = (
                f"SELECT n.labels FROM {{s}}.namespaces n WHERE {where} "
                "ORDER BY n.labels LIMIT %s OFFSET %s"
            )
            return Statement(
                render(text, self.schema), [*params, plan.limit, plan.offset], prepare=False
            )
        depth = plan.max_depth
        text = (
            "WITH RECURSIVE walk(ns) AS ("
            f"(SELECT n.labels[1:%s] FROM {{s}}.namespaces n WHERE {where} "
            "ORDER BY n.labels LIMIT 1) UNION ALL "
            f"SELECT (SELECT n.labels[1:%s] FROM {{s}}.namespaces n WHERE {where} "
            # Past the previous one: the next namespace if it was shorter than the depth
            # (ns || '': labels are never empty), else past every namespace under it.
            "AND n.labels >= CASE WHEN cardinality(w.ns) < %s THEN w.ns || ''::text "
            "ELSE w.ns[1:cardinality(w.ns) - 1] || (w.ns[cardinality(w.ns)] || chr(1)) END "
            "ORDER BY n.labels LIMIT 1) FROM walk w WHERE w.ns IS NOT NULL) "
            "SELECT ns FROM walk WHERE ns IS NOT NULL LIMIT %s OFFSET %s"
        )
        return Statement(
            render(text, self.schema),
            [depth, *params, depth, *params, depth, plan.limit, plan.offset],
        )

    # Maintenance -----------------------------------------------------------

    def prune(self, prefixes: Sequence[str]) -> Statement:
        """Drop registry rows of namespaces left empty (skipping ones being written)."""
        return Statement(self._fixed["prune"], (sorted(set(prefixes)),))

    def prune_all(self) -> Statement:
        """Drop every empty namespace's registry row (a background safety net)."""
        return Statement(self._fixed["prune_all"])

    def sweep(self, now: datetime, limit: int) -> Statement:
        """Delete up to `limit` expired items; returns (count, their prefixes)."""
        return Statement(self._fixed["sweep"], (now, limit))

    def flush_access(self, records: Sequence[AccessRecord], stats: bool) -> Statement:
        """Write buffered reads: access statistics and/or TTL refreshes.

        Rows are updated in (prefix, key) order, the order batches write them in.
        """
        records = sorted(records, key=lambda r: (r.prefix, r.key))
        return Statement(
            self._fixed["flush"],
            (
                stats,
                stats,
                [r.prefix for r in records],
                [r.key for r in records],
                [r.hits for r in records],
                [r.at for r in records],
                [r.refresh for r in records],
            ),
        )


def _list_where(plan: ListPlan, now: datetime) -> tuple[str, list[Any]]:
    """The conditions on `{s}.namespaces n` of a listing: its match, and a live item."""
    clauses: list[str] = []
    params: list[Any] = []
    match = plan.match
    if match.fixed_prefix:
        # Arrays starting with the prefix's labels: from the labels themselves up to the
        # last label followed by chr(1), the next string after it (labels hold no NUL).
        *head, last = match.fixed_prefix
        clauses.append("n.labels >= %s::text[] AND n.labels < %s::text[]")
        params += [list(match.fixed_prefix), [*head, last + "\x01"]]
    if match.min_depth:
        clauses.append("n.depth >= %s")
        params.append(match.min_depth)
    for position, label in match.from_start:
        if position < len(match.fixed_prefix):
            continue  # in the range above
        clauses.append("n.labels[%s] = %s")
        params += [position + 1, label]
    for position, label in match.from_end:
        clauses.append("n.labels[n.depth - %s + 1] = %s")
        params += [position, label]
    # A registered namespace without a live item is one whose TTL items expired (it is
    # flagged `expiring`), or a leftover the next sweep prunes; only flagged ones are
    # checked here, so the cost follows the namespaces listed, not the items.
    clauses.append(
        "(NOT n.expiring OR EXISTS (SELECT 1 FROM {s}.items i WHERE i.prefix = n.prefix AND "
        + _LIVE.format(alias="i.")
        + "))"
    )
    params.append(now)
    return " AND ".join(clauses), params


_PRUNE_ALL = (
    "SELECT {s}.prune_namespaces(ARRAY(SELECT n.prefix FROM {s}.namespaces n "
    "WHERE NOT EXISTS (SELECT 1 FROM {s}.items i WHERE i.prefix = n.prefix)))"
)
_SWEEP = (
    "WITH doomed AS (SELECT prefix, key FROM {s}.items WHERE expires_at <= %s "
    "ORDER BY expires_at LIMIT %s FOR UPDATE SKIP LOCKED), "
    "gone AS (DELETE FROM {s}.items i USING doomed d "
    "WHERE i.prefix = d.prefix AND i.key = d.key RETURNING i.prefix) "
    "SELECT count(*), coalesce(array_agg(DISTINCT prefix), ARRAY[]::text[]) FROM gone"
)
_FLUSH = (
    "UPDATE {s}.items i SET "
    "access_count = CASE WHEN %s THEN i.access_count + a.hits ELSE i.access_count END, "
    "accessed_at = CASE WHEN %s THEN greatest(i.accessed_at, a.at) ELSE i.accessed_at END, "
    "expires_at = CASE WHEN a.refresh AND i.ttl_minutes IS NOT NULL "
    "THEN greatest(i.expires_at, a.at + i.ttl_minutes * interval '1 minute') "
    "ELSE i.expires_at END "
    "FROM unnest(%b::text[], %b::text[], %b::int8[], %b::timestamptz[], %b::bool[]) "
    "AS a(prefix, key, hits, at, refresh) "
    "WHERE i.prefix = a.prefix AND i.key = a.key"
)

"""The Postgres store's flows as generators of effects, shared by the sync and async stores.

Rules:
- a batch of one get, or of one put without vectors, runs `get_gen` / `put_gen`: the
  batch flow's statements for `[op]` without the batch's planning (the hot paths);
- a batch embeds first (queries, then documents), then runs every read and its single
  write statement in one round trip; reads come first, so they see the state before
  the batch's writes;
- each statement runs in its tenant for row-level security: a `set_config` of
  `langmem.tenant` (transaction-local) goes before each run of statements of one tenant,
  in the same round trip; gets are grouped by tenant; writes spanning tenants run in none
  (only a role that bypasses RLS, e.g. the tables' owner, can make them);
- a vector search asks the HNSW index for a few candidates per wanted item and asks
  again, with more, only when max pooling left fewer items than the page needs; a page
  still short is filled with the items that have no vector (score None), newest first;
- reads never write: access statistics and TTL refreshes are handed to the buffer
  (`batched`), written in a second statement (`sync`), or skipped (`off`, TTL refreshes
  still buffered);
- maintenance drains the buffer into one UPDATE, then sweeps expired items in chunks,
  prunes the namespaces they emptied, and drops any other empty namespace left behind.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from langgraph.store.base import GetOp, Item, Op, PutOp, Result, SearchItem

from langmem_prod.store._access import AccessRecord, TrackAccess, track_reads
from langmem_prod.store._effects import DrainAccess, Embed, RecordAccess
from langmem_prod.store._index import IndexSettings, embed_texts
from langmem_prod.store._namespace import encode_namespace
from langmem_prod.store._ops import (
    BatchPlan,
    GetPlan,
    ListPlan,
    SearchPlan,
    WritePlan,
    item_from_row,
    plan_get,
    plan_put,
    search_item_from_row,
)
from langmem_prod.store.postgres._effects import Execute
from langmem_prod.store.postgres._rls import in_tenant, scoped, tenant_of
from langmem_prod.store.postgres._sql import PgSql, Statement
from langmem_prod.store.postgres._write_sql import write_statement

SWEEP_CHUNK = 1000
_MAX_CANDIDATES = 100_000
_ITERATIVE_SCAN = Statement("SELECT set_config('hnsw.iterative_scan', 'strict_order', false)")

Effect = Execute | Embed | RecordAccess | DrainAccess


@dataclass(frozen=True, slots=True)
class PgConfig:
    """Everything the flows need to know about one store."""

    sql: PgSql
    index: IndexSettings | None
    track: TrackAccess


def _vector_literal(vector: Sequence[float]) -> str:
    return "[" + ",".join(str(float(x)) for x in vector) + "]"


def _candidates(cfg: PgConfig, plan: SearchPlan) -> int:
    per_item = cfg.index.vectors_per_item if cfg.index else 1
    return (plan.offset + plan.limit) * per_item * 2 + 1


def batch_gen(
    cfg: PgConfig, plan: BatchPlan, now: datetime
) -> Generator[Effect, Any, list[Result]]:
    """Run a planned batch; returns the results in op order."""
    queries: dict[str, str] = {}
    documents: dict[str, str] = {}
    if cfg.index is not None:
        queries = yield from embed_texts(
            cfg.index, plan.search_queries, query=True, encode=_vector_literal
        )
        documents = yield from embed_texts(
            cfg.index, plan.put_texts, query=False, encode=_vector_literal
        )
    gets = [(g.prefix, g.key) for g in plan.gets]
    if len(gets) > 1:
        gets = list(dict.fromkeys(gets))
    parts, get_statements = _statements(
        cfg, plan, gets, queries=queries, documents=documents, now=now
    )
    queries_head = (_ITERATIVE_SCAN,) if queries else ()
    effect, positions = scoped(parts, queries_head)
    answers = yield effect
    rowsets = iter([answers[i] for i in positions])

    results: list[Result] = [None] * plan.size
    get_rows = [row for _ in range(get_statements) for row in next(rowsets)]
    reads = _get_results(plan, get_rows, results)
    for search in plan.searches:
        rows = next(rowsets)
        if search.query is not None:
            rows = yield from _more_candidates(cfg, search, queries[search.query], rows, now)
            rows = yield from _with_unscored(cfg, search, rows, now)
        results[search.pos] = _search_items(rows, scored=search.query is not None)
        reads += [(r[0], r[1], search.refresh and r[5]) for r in rows if r[0] is not None]
    for listing in plan.lists:
        results[listing.pos] = [tuple(row[0]) for row in next(rowsets)]
    if reads:
        yield from track_reads(cfg.track, reads, now, functools.partial(_flush_now, cfg))
    return results


def lone_gen(
    cfg: PgConfig, ops: Iterable[Op], *, max_value_bytes: int, now: datetime
) -> Generator[Effect, Any, list[Result]] | None:
    """The flow of a batch of one get, or of one put with nothing to embed; else None.

    What `batch_gen` does for such a batch, without its planning: the hot path of
    `store.get` and `store.put` (a store with a value transform never asks).
    """
    if not isinstance(ops, list) or len(ops) != 1:
        return None  # one pass over an iterator: the batch flow takes it
    op = ops[0]
    if type(op) is GetOp:
        return _one(get_gen(cfg, plan_get(op), now))
    if type(op) is PutOp and op.value is not None and cfg.index is None:
        return _one(put_gen(cfg, plan_put(op, max_value_bytes=max_value_bytes), now))
    return None


def _one(gen: Generator[Effect, Any, Result]) -> Generator[Effect, Any, list[Result]]:
    return [(yield from gen)]


def get_gen(cfg: PgConfig, get: GetPlan, now: datetime) -> Generator[Effect, Any, Item | None]:
    """Run a lone get: one statement (after the tenant's setting, if any)."""
    effect = in_tenant(tenant_of(get.prefix), (cfg.sql.get(((get.prefix, get.key),), now),))
    rows = (yield effect)[-1]
    if not rows:
        return None
    row = rows[0]
    reads = [(get.prefix, get.key, get.refresh and row[5])]
    yield from track_reads(cfg.track, reads, now, functools.partial(_flush_now, cfg))
    return item_from_row(get.namespace, row)


def put_gen(cfg: PgConfig, write: WritePlan, now: datetime) -> Generator[Effect, Any, None]:
    """Run a lone put without vectors: the batch flow's one write statement, alone."""
    statement = write_statement(cfg.sql.schema, cfg.sql.vector_type, (write,), {}, now)
    yield in_tenant(tenant_of(write.prefix), (statement,))


def _statements(
    cfg: PgConfig,
    plan: BatchPlan,
    gets: list[tuple[str, str]],
    *,
    queries: dict[str, str],
    documents: dict[str, str],
    now: datetime,
) -> tuple[list[tuple[str, Statement]], int]:
    """Every statement of the batch with its tenant, reads first; and how many are gets."""
    sql = cfg.sql
    by_tenant: dict[str, list[tuple[str, str]]] = {}
    for prefix, key in gets:
        by_tenant.setdefault(tenant_of(prefix), []).append((prefix, key))
    parts = [(tenant, sql.get(keys, now)) for tenant, keys in by_tenant.items()]
    parts += [
        (_search_tenant(search), _search_statement(cfg, search, queries, now))
        for search in plan.searches
    ]
    parts += [(_list_tenant(listing), sql.list_namespaces(listing, now)) for listing in plan.lists]
    if plan.writes:
        tenants = {tenant_of(w.prefix) for w in plan.writes}
        tenant = tenants.pop() if len(tenants) == 1 else ""
        write = write_statement(sql.schema, sql.vector_type, plan.writes, documents, now)
        parts.append((tenant, write))
        emptied = [w.prefix for w in plan.writes if w.value_json is None]
        if emptied:
            parts.append((tenant, sql.prune(emptied)))
    return parts, len(by_tenant)


def _search_tenant(search: SearchPlan) -> str:
    return "" if search.prefix is None else tenant_of(search.prefix)


def _list_tenant(listing: ListPlan) -> str:
    return tenant_of(encode_namespace(tuple(listing.match.fixed_prefix)))


def _get_results(
    plan: BatchPlan, rows: list[Any], results: list[Result]
) -> list[tuple[str, str, bool]]:
    """Place each get's item; return the reads to track."""
    found = {(row[0], row[1]): row for row in rows}
    reads: list[tuple[str, str, bool]] = []
    for get in plan.gets:
        row = found.get((get.prefix, get.key))
        if row is not None:
            results[get.pos] = item_from_row(get.namespace, row)
            reads.append((get.prefix, get.key, get.refresh and row[5]))
    return reads


def _search_statement(
    cfg: PgConfig, search: SearchPlan, queries: dict[str, str], now: datetime
) -> Statement:
    if search.query is None:
        return cfg.sql.search(search, now)
    return cfg.sql.vector_search(search, queries[search.query], _candidates(cfg, search), now)


def _more_candidates(
    cfg: PgConfig, search: SearchPlan, vector: str, rows: list[Any], now: datetime
) -> Generator[Effect, Any, list[Any]]:
    """Re-ask with more candidates while max pooling left the page short."""
    candidates = _candidates(cfg, search)
    while rows and rows[0][7] >= candidates and rows[0][8] < search.offset + search.limit:
        if candidates >= _MAX_CANDIDATES:
            break
        candidates = min(candidates * 4, _MAX_CANDIDATES)
        statement = cfg.sql.vector_search(search, vector, candidates, now)
        effect, (at,) = scoped([(_search_tenant(search), statement)], (_ITERATIVE_SCAN,))
        rows = (yield effect)[at]
    return rows


def _with_unscored(
    cfg: PgConfig, search: SearchPlan, rows: list[Any], now: datetime
) -> Generator[Effect, Any, list[Any]]:
    """Fill a short page of scored items with items that have no vector, score None.

    As in LangGraph's InMemoryStore, items stored with `index=False` (or with none of the
    indexed fields) come after every scored item; the page's offset and limit run over
    both groups: the unscored group starts at `offset` minus the scored items' count.
    """
    found = [row for row in rows if row[0] is not None]
    if len(found) >= search.limit:
        return rows
    scored = int(rows[0][8]) if rows else 0
    statement = cfg.sql.unscored_search(
        search, now, search.limit - len(found), max(0, search.offset - scored)
    )
    effect, (at,) = scoped([(_search_tenant(search), statement)], ())
    return found + list((yield effect)[at])


def _search_items(rows: list[Any], *, scored: bool) -> list[SearchItem]:
    return [
        search_item_from_row(row, float(row[6]) if scored and row[6] is not None else None)
        for row in rows
        if row[0] is not None
    ]


def _flush(cfg: PgConfig, records: list[AccessRecord], *, stats: bool) -> Execute:
    """One UPDATE per run of one tenant's records, each in its tenant, in one round trip.

    Rows are still updated in (prefix, key) order, the order batches write them in.
    """
    records = sorted(records, key=lambda r: (r.prefix, r.key))
    runs = itertools.groupby(records, key=lambda r: tenant_of(r.prefix))
    parts = [(t, cfg.sql.flush_access(list(run), stats=stats)) for t, run in runs]
    return scoped(parts)[0]


def _flush_now(cfg: PgConfig, records: list[AccessRecord]) -> Execute:
    return _flush(cfg, records, stats=True)


def flush_gen(cfg: PgConfig) -> Generator[Effect, Any, int]:
    """Write the buffered reads; returns how many items were touched."""
    records: list[AccessRecord] = yield DrainAccess()
    if records:
        yield _flush(cfg, records, stats=cfg.track != "off")
    return len(records)


def sweep_gen(cfg: PgConfig, now: datetime) -> Generator[Effect, Any, int]:
    """Flush buffered reads (they may refresh TTLs), then delete expired items."""
    yield from flush_gen(cfg)
    swept = 0
    while True:
        ((count, prefixes),) = (yield Execute((cfg.sql.sweep(now, SWEEP_CHUNK),)))[0]
        swept += int(count)
        if prefixes:
            yield Execute((cfg.sql.prune(prefixes),))
        if count < SWEEP_CHUNK:
            yield Execute((cfg.sql.prune_all(),))
            return swept

"""The Redis store's flows as generators of effects, shared by the sync and async stores.

Rules:
- a batch embeds first, then sends every read and write in one pipeline: a GET per
  get, one search or listing script per shard concerned, one write script per shard;
- shards are chosen by a namespace's first `shard_depth` labels, so a search or listing
  under a prefix at least that deep touches one shard, a shallower one every shard;
- search and listing scripts return at most offset + limit rows per shard; the rows are
  merged here (newest first, or best score first) and paged;
- a put under ("tenants", <id>, ...) carries its size, so the write script keeps the
  tenant's usage and enforces its limits (see `_quota`);
- reads never write: access statistics and TTL refreshes go to the buffer, as in the
  Postgres store, and the flush script writes them; the sweep script deletes expired
  items and their index entries.
"""

from __future__ import annotations

import functools
import heapq
import json
import re
from collections import defaultdict
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from langgraph.store.base import Item, Result, SearchItem

from langmem_prod.store._access import AccessRecord, TrackAccess, track_reads
from langmem_prod.store._effects import DrainAccess, Embed, RecordAccess
from langmem_prod.store._filter import Condition, Group, Node
from langmem_prod.store._index import IndexSettings, embed_texts
from langmem_prod.store._namespace import decode_namespace
from langmem_prod.store._ops import BatchPlan, GetPlan, ListPlan, SearchPlan, WritePlan
from langmem_prod.store._tenant import tenant_of_text
from langmem_prod.store._values import decode_value
from langmem_prod.store.redis._distance import blob_encoder
from langmem_prod.store.redis._effects import Command, Pipeline, script
from langmem_prod.store.redis._keys import REGISTRY_ALL, KeyLayout, registry_member, registry_range
from langmem_prod.store.redis._quota import jsonb_size

SWEEP_CHUNK = 1000
_BASES_CACHED = 10_000
_CONTROL = re.compile(r"[\x00-\x1f]")
_NUMERIC_TESTS = ("$eq", "$gt", "$gte", "$lt", "$lte")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)

Effect = Pipeline | Embed | RecordAccess | DrainAccess
ItemT = TypeVar("ItemT", Item, SearchItem)


@dataclass(frozen=True, slots=True)
class RedisConfig:
    """Everything the flows need to know about one store."""

    keys: KeyLayout
    shard_depth: int
    index: IndexSettings | None
    track: TrackAccess
    # Namespace text -> shard key base, as every get needs one; bounded by clearing.
    _bases: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def base(self, prefix: str) -> str:
        """The key base of the shard holding namespace `prefix` (its text)."""
        base = self._bases.get(prefix)
        if base is None:
            labels = prefix.split(".", self.shard_depth)[: self.shard_depth]
            base = self.keys.base(".".join(labels))
            if len(self._bases) >= _BASES_CACHED:
                self._bases.clear()
            self._bases[prefix] = base
        return base

    def bases_under(self, fixed: str | None) -> Sequence[str]:
        """The shards that can hold namespaces starting with `fixed` (None: all)."""
        if fixed is not None and fixed.count(".") + 1 >= self.shard_depth:
            return (self.base(fixed),)
        return self.keys.bases


def to_us(moment: datetime) -> int:
    """Microseconds since the epoch."""
    return (moment - _EPOCH) // _US


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _bytes(value: bytes | str) -> bytes:
    """A reply as bytes, also from a client made with decode_responses=True."""
    return value.encode() if isinstance(value, str) else value


def batch_gen(
    cfg: RedisConfig, plan: BatchPlan, now: datetime
) -> Generator[Effect, Any, list[Result]]:
    """Run a planned batch in one pipeline; returns the results in op order."""
    if plan.size == 1 and plan.gets:  # a lone get, the hottest path: skip the rest
        return [(yield from _lone_get(cfg, plan.gets[0], now))]
    queries: dict[str, bytes] = {}
    documents: dict[str, bytes] = {}
    if cfg.index is not None:
        encode = blob_encoder(cfg.index)
        queries = yield from embed_texts(cfg.index, plan.search_queries, query=True, encode=encode)
        documents = yield from embed_texts(cfg.index, plan.put_texts, query=False, encode=encode)
    now_us = to_us(now)
    gets = [(g.prefix, g.key) for g in plan.gets]
    if len(gets) > 1:
        gets = list(dict.fromkeys(gets))
    commands: list[Command] = [("GET", _record(cfg, p, k)) for p, k in gets]
    searches = [_search_scripts(cfg, s, queries, now_us) for s in plan.searches]
    listings = [_list_scripts(cfg, listing, now_us) for listing in plan.lists]
    for scripts in (*searches, *listings):
        commands += scripts
    if plan.writes:
        commands += _write_scripts(cfg, plan.writes, documents, now)
    scripted = len(commands) > len(gets)
    replies = iter((yield Pipeline(tuple(commands), bool(plan.writes), scripted)))

    results: list[Result] = [None] * plan.size
    found = dict(zip(gets, replies, strict=False))  # the replies go on past the gets
    reads: list[tuple[str, str, bool]] = []
    for get in plan.gets:
        hit = _from_record(Item, get.namespace, get.key, found[(get.prefix, get.key)], now_us)
        if hit is not None:
            results[get.pos], has_ttl = hit
            reads.append((get.prefix, get.key, get.refresh and has_ttl))
    for search, scripts in zip(plan.searches, searches, strict=True):
        page = _merge_search([next(replies) for _ in scripts], search)
        results[search.pos] = [item for item, _, _ in page]
        reads += [(ns, item.key, search.refresh and has_ttl) for item, ns, has_ttl in page]
    for listing, scripts in zip(plan.lists, listings, strict=True):
        results[listing.pos] = _merge_listing([next(replies) for _ in scripts], listing)
    if reads:
        yield from track_reads(cfg.track, reads, now, functools.partial(_flush_now, cfg))
    return results


def _lone_get(cfg: RedisConfig, get: GetPlan, now: datetime) -> Generator[Effect, Any, Item | None]:
    reply = yield Pipeline((("GET", _record(cfg, get.prefix, get.key)),))
    hit = _from_record(Item, get.namespace, get.key, reply[0], to_us(now))
    if hit is None:
        return None
    item, has_ttl = hit
    reads = [(get.prefix, get.key, get.refresh and has_ttl)]
    yield from track_reads(cfg.track, reads, now, functools.partial(_flush_now, cfg))
    return item


def _record(cfg: RedisConfig, prefix: str, key: str) -> str:
    return f"{cfg.base(prefix)}r:{prefix}\x00{key}"


def _from_record(
    kind: type[ItemT], namespace: tuple[str, ...], key: str, record: bytes | str | None, now_us: int
) -> tuple[ItemT, bool] | None:
    """The item of a record (see `_lua`), and whether it has a TTL; None if expired."""
    if record is None:
        return None
    head, _, value = _bytes(record).partition(b"\n")
    created, updated, expires, minutes = head.split(b" ")
    if expires != b"-" and int(expires) <= now_us:
        return None
    item = kind.__new__(kind)
    item.value = decode_value(value)
    item.key = key
    item.namespace = namespace
    item.created_at = datetime.fromisoformat(created.decode())
    item.updated_at = datetime.fromisoformat(updated.decode())
    return item, minutes != b"-"


_EMPTY_ARRAY = "\x00[]"  # the Lua scripts' marker of an empty array (see _lua.decode)


def _marked(operand: Any) -> Any:
    """An operand with its empty arrays replaced by the scripts' marker."""
    if isinstance(operand, list | tuple):
        return [_marked(x) for x in operand] if operand else _EMPTY_ARRAY
    if isinstance(operand, dict):
        return {k: _marked(v) for k, v in operand.items()}
    return operand


def _conditions_json(search: SearchPlan) -> str:
    """The search's conditions for the script; only the top ones carry text tests."""
    return json.dumps(
        [
            {**_node_json(c), **_needle(c.path, c.op, c.operand)}
            if isinstance(c, Condition)
            else _node_json(c)
            for c in search.conditions
        ]
    )


def _node_json(node: Node) -> dict[str, Any]:
    """A condition (`p` path, `o` op, `v` operand, `s` a string operand) or a group (`c`)."""
    if isinstance(node, Group):
        return {"o": node.op, "c": [_node_json(child) for child in node.children]}
    return {
        "p": list(node.path),
        "o": node.op,
        # $in/$nin take a list of operands: mark inside it, not the list itself.
        "v": [_marked(x) for x in node.operand]
        if node.op in ("$in", "$nin")
        else _marked(node.operand),
        "s": isinstance(node.operand, str),
    }


def _needle(path: tuple[str, ...], op: str, operand: Any) -> dict[str, str]:
    """A text test that a value's JSON must pass to hold `path op operand`, if one is sound.

    Values are JSON without spaces, so a value with "note" at path (..., "kind") holds
    the text `"kind":"note"` (`t`), and one with 600 there holds `"score":` followed by
    a number >= 500 (`k`: the script tries each occurrence). The script runs the test
    before decoding, and most values that fail a filter fail it. Only strings without
    control characters, booleans, null and numbers are tested: their JSON is the same
    from orjson and json, the two encoders of values. Array positions are not.
    """
    label = path[-1]
    if label.lstrip("-").isdigit() or _CONTROL.search(label):
        return {}
    key = json.dumps(label, ensure_ascii=False) + ":"
    if isinstance(operand, int | float) and not isinstance(operand, bool):
        return {"k": key} if op in _NUMERIC_TESTS else {}
    if op == "$eq" and (
        operand is None
        or isinstance(operand, bool)
        or (isinstance(operand, str) and not _CONTROL.search(operand))
    ):
        return {"t": key + json.dumps(operand, ensure_ascii=False)}
    return {}


def _search_scripts(
    cfg: RedisConfig, search: SearchPlan, queries: dict[str, bytes], now_us: int
) -> list[Command]:
    low, high = REGISTRY_ALL if search.prefix is None else registry_range(search.prefix)
    vector = queries.get(search.query, b"") if search.query else b""
    args = (now_us, low, high, _conditions_json(search), search.offset + search.limit)
    dims = cfg.index.dims if cfg.index else 0
    metric = "l2" if cfg.index and cfg.index.distance == "l2" else "dot"
    return [
        script(
            "search",
            (cfg.keys.registry(base), cfg.keys.expiring(base)),
            (args[0], base, *args[1:], vector, dims, metric),
        )
        for base in cfg.bases_under(search.prefix)
    ]


def _merge_search(
    replies: list[bytes | str], search: SearchPlan
) -> list[tuple[SearchItem, str, bool]]:
    """Merge the shards' rows: best score (or newest) first, then namespace, then key.

    A shard's rows come as one string of NUL-separated fields (none can hold a NUL):
    four per row, see `_lua.SEARCH`. Only the rows of the page become items. Rows of a
    query search without a vector (sort score "u" + update time) follow every scored row,
    newest first, with score None; the page's offset runs over both groups.
    """
    rows: list[tuple[int, float, str, str, bytes]] = []
    for reply in replies:
        if reply:
            fields = _bytes(reply).split(b"\x00")
            for i in range(0, len(fields), 4):
                score, ns_bytes, key_bytes, record = fields[i : i + 4]
                unscored = score[:1] == b"u"
                rows.append(
                    (
                        int(unscored),
                        -float(score[1:] if unscored else score),
                        ns_bytes.decode(),
                        key_bytes.decode(),
                        record,
                    )
                )
    rows.sort(key=lambda row: row[:4])
    page: list[tuple[SearchItem, str, bool]] = []
    namespaces: dict[str, tuple[str, ...]] = {}
    for group, negated, ns, key, record in rows[search.offset : search.offset + search.limit]:
        namespace = namespaces.get(ns) or namespaces.setdefault(ns, decode_namespace(ns))
        hit = _from_record(SearchItem, namespace, key, record, 0)
        assert hit is not None  # the script returns live items only
        item, has_ttl = hit
        item.score = -negated if search.query is not None and not group else None
        page.append((item, ns, has_ttl))
    return page


def _list_scripts(cfg: RedisConfig, listing: ListPlan, now_us: int) -> list[Command]:
    match = listing.match
    fixed = ".".join(match.fixed_prefix) if match.fixed_prefix else None
    low, high = REGISTRY_ALL if fixed is None else registry_range(fixed)
    spec = json.dumps(
        {
            "d": match.min_depth,
            "s": [[i + 1, label] for i, label in match.from_start],
            "e": [[i, label] for i, label in match.from_end],
        }
    )
    need = listing.offset + listing.limit
    return [
        script(
            "list",
            (cfg.keys.registry(base), cfg.keys.expiring(base)),
            (now_us, base, low, high, spec, listing.max_depth or 0, need),
        )
        for base in cfg.bases_under(fixed)
    ]


def _merge_listing(replies: list[list[Any]], listing: ListPlan) -> list[tuple[str, ...]]:
    """Merge the shards' sorted, distinct listings into one page."""
    merged: list[tuple[str, ...]] = []
    for member in heapq.merge(*([_text(m) for m in reply] for reply in replies)):
        namespace = tuple(member.split("\x00"))
        if not merged or merged[-1] != namespace:
            merged.append(namespace)
    return merged[listing.offset : listing.offset + listing.limit]


def _write_scripts(
    cfg: RedisConfig, writes: Iterable[WritePlan], documents: dict[str, bytes], now: datetime
) -> list[Command]:
    now_us, now_iso = to_us(now), now.astimezone(UTC).isoformat(timespec="microseconds")
    groups: dict[str, list[Any]] = defaultdict(list)
    for w in writes:
        member = registry_member(w.prefix)
        args = groups[cfg.base(w.prefix)]
        if w.value_json is None:
            args += ["d", w.prefix, member, w.key]
            continue
        vectors = b"".join(documents[t] for _, t in (w.texts or ()))
        if w.ttl_minutes is None:
            ttl: list[Any] = ["", "-", "-"]
        else:
            ttl_us = round(w.ttl_minutes * 60_000_000)
            ttl = [max(1, ttl_us // 1000), now_us + ttl_us, repr(w.ttl_minutes)]
        size = "" if tenant_of_text(w.prefix) is None else jsonb_size(w.value_json)
        args += ["p", w.prefix, member, w.key, w.value_json, *ttl, vectors, size]
    flag = "1" if cfg.index is not None else "0"
    return [
        script("write", cfg.keys.shard_keys(base), (now_us, now_iso, base, flag, *args))
        for base, args in groups.items()
    ]


def _flush_scripts(
    cfg: RedisConfig, records: Sequence[AccessRecord], *, stats: bool
) -> list[Command]:
    groups: dict[str, list[Any]] = defaultdict(list)
    for r in records:
        groups[cfg.base(r.prefix)] += [
            r.prefix,
            r.key,
            r.hits,
            to_us(r.at),
            "1" if r.refresh else "0",
        ]
    return [
        script("flush", cfg.keys.shard_keys(base), (base, "1" if stats else "0", *args))
        for base, args in groups.items()
    ]


def _flush_now(cfg: RedisConfig, records: list[AccessRecord]) -> Pipeline:
    return Pipeline(tuple(_flush_scripts(cfg, records, stats=True)), scripted=True)


def flush_gen(cfg: RedisConfig) -> Generator[Effect, Any, int]:
    """Write the buffered reads; returns how many items were touched."""
    records: list[AccessRecord] = yield DrainAccess()
    if not records:
        return 0
    scripts = _flush_scripts(cfg, records, stats=cfg.track != "off")
    replies = yield Pipeline(tuple(scripts), scripted=True)
    return sum(int(r) for r in replies)


def sweep_gen(cfg: RedisConfig, now: datetime) -> Generator[Effect, Any, int]:
    """Flush buffered reads (they may refresh TTLs), then delete expired items."""
    yield from flush_gen(cfg)
    now_us, swept, bases = to_us(now), 0, list(cfg.keys.bases)
    while bases:
        calls = tuple(
            script("sweep", cfg.keys.shard_keys(base), (now_us, base, SWEEP_CHUNK))
            for base in bases
        )
        counts = [int(c) for c in (yield Pipeline(calls, scripted=True))]
        swept += sum(counts)
        bases = [base for base, count in zip(bases, counts, strict=True) if count >= SWEEP_CHUNK]
    return swept

"""Batch planning: validate a list of LangGraph ops and group them by kind, with no I/O.

Rules:
- every op is validated before anything runs, so bad input raises and writes nothing:
  namespaces and keys (`_namespace`), filters (`_filter`), queries (a `str` UTF-8 can
  encode, even when the store has no index), values (`_values`: JSON, size, depth);
- reads (gets, searches, namespace listings) see the state before the batch's writes;
- writes to the same (namespace, key) collapse to the last one (a delete is a put of None);
- writes are ordered by (namespace, key) so concurrent batches lock rows in one order;
- results come back in the order of the ops: None for puts, an Item or None for gets.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from langgraph.store.base import (
    GetOp,
    Item,
    ListNamespacesOp,
    Op,
    PutOp,
    SearchItem,
    SearchOp,
)

from langmem_prod.errors import ConfigurationError, InvalidInputError
from langmem_prod.store._filter import Node, filter_fields, parse_filter
from langmem_prod.store._index import IndexSettings, check_index, item_texts, top_fields
from langmem_prod.store._namespace import (
    NamespaceMatch,
    compile_match,
    decode_namespace,
    encode_namespace,
    validate_op,
)
from langmem_prod.store._text import has_surrogate
from langmem_prod.store._transform import ValueTransform
from langmem_prod.store._ttl import check_ttl
from langmem_prod.store._values import decode_value, encode_value


class GetPlan(NamedTuple):
    """A get at result position `pos`."""

    pos: int
    namespace: tuple[str, ...]
    prefix: str
    key: str
    refresh: bool


class SearchPlan(NamedTuple):
    """A search at result position `pos`; `prefix` None searches every namespace."""

    pos: int
    prefix: str | None
    conditions: tuple[Node, ...]
    limit: int
    offset: int
    query: str | None
    refresh: bool


class ListPlan(NamedTuple):
    """A namespace listing at result position `pos`."""

    pos: int
    match: NamespaceMatch
    max_depth: int | None
    limit: int
    offset: int


class WritePlan(NamedTuple):
    """The final write of one item: `value_json` None deletes it.

    `texts` are the (field, text) pairs to embed; None when the store has no index.
    """

    prefix: str
    key: str
    value_json: str | None
    ttl_minutes: float | None
    texts: tuple[tuple[str, str], ...] | None


class BatchPlan(NamedTuple):
    """A validated batch, grouped by kind."""

    size: int
    gets: tuple[GetPlan, ...]
    searches: tuple[SearchPlan, ...]
    lists: tuple[ListPlan, ...]
    writes: tuple[WritePlan, ...]

    @property
    def put_texts(self) -> list[str]:
        """The distinct texts the batch's writes need embedded, in first-seen order."""
        seen: dict[str, None] = {}
        for write in self.writes:
            for _, text in write.texts or ():
                seen.setdefault(text, None)
        return list(seen)

    @property
    def search_queries(self) -> list[str]:
        """The distinct search queries to embed, in first-seen order."""
        return list(dict.fromkeys(s.query for s in self.searches if s.query))


def plan_batch(
    ops: Iterable[Op],
    *,
    index: IndexSettings | None,
    max_value_bytes: int,
    validate: bool = True,
    transform: ValueTransform | None = None,
    now: datetime | None = None,
) -> BatchPlan:
    """Validate `ops` and group them; a `transform` seals values written at `now`.

    >>> from langgraph.store.base import GetOp, PutOp
    >>> plan = plan_batch([PutOp(("a",), "k", {"x": 1}), GetOp(("a",), "k")],
    ...                   index=None, max_value_bytes=1024)
    >>> plan.size, plan.writes[0].value_json, plan.gets[0].prefix
    (2, '{"x":1}', 'a')
    """
    gets: list[GetPlan] = []
    searches: list[SearchPlan] = []
    lists: list[ListPlan] = []
    writes: dict[tuple[str, str], WritePlan] = {}
    size = 0
    for pos, op in enumerate(ops):
        size += 1
        if validate:
            validate_op(op)
        if isinstance(op, GetOp):
            ns = tuple(op.namespace)
            gets.append(GetPlan(pos, ns, encode_namespace(ns), op.key, bool(op.refresh_ttl)))
        elif isinstance(op, SearchOp):
            search = _plan_search(pos, op, has_index=index is not None)
            if transform is not None and search.conditions:
                fields = filter_fields(search.conditions)
                transform.check_search(tuple(op.namespace_prefix), fields)
            searches.append(search)
        elif isinstance(op, ListNamespacesOp):
            match = compile_match(op.match_conditions)
            lists.append(ListPlan(pos, match, op.max_depth, op.limit, op.offset))
        else:
            write = _plan_write(op, index, max_value_bytes, transform, now)
            writes.pop((write.prefix, write.key), None)
            writes[(write.prefix, write.key)] = write
    ordered = tuple(sorted(writes.values(), key=lambda w: (w.prefix, w.key))) if writes else ()
    return BatchPlan(size, tuple(gets), tuple(searches), tuple(lists), ordered)


def plan_get(op: GetOp) -> GetPlan:
    """Validate a lone get and plan it (the batch plan of `[op]`, without the batch).

    >>> plan_get(GetOp(("a", "b"), "k")).prefix
    'a.b'
    """
    validate_op(op)
    namespace = tuple(op.namespace)
    return GetPlan(0, namespace, encode_namespace(namespace), op.key, bool(op.refresh_ttl))


def plan_put(op: PutOp, *, max_value_bytes: int) -> WritePlan:
    """Validate a lone put (no index, no value transform) and plan its write.

    >>> plan_put(PutOp(("a",), "k", {"x": 1}), max_value_bytes=1024).value_json
    '{"x":1}'
    """
    validate_op(op)
    return _plan_write(op, None, max_value_bytes, None, None)


def _plan_search(pos: int, op: SearchOp, *, has_index: bool) -> SearchPlan:
    prefix = encode_namespace(tuple(op.namespace_prefix)) if op.namespace_prefix else None
    if op.query is not None and not isinstance(op.query, str):
        raise InvalidInputError(f"a search query must be a str, not {type(op.query).__name__}")
    if op.query and has_surrogate(op.query):
        raise InvalidInputError(
            "a search query holds a lone surrogate (U+D800-U+DFFF), which UTF-8 cannot "
            "encode; pass valid Unicode text"
        )
    query = op.query if has_index and op.query else None
    return SearchPlan(
        pos,
        prefix,
        parse_filter(op.filter),
        op.limit,
        op.offset,
        query,
        bool(op.refresh_ttl),
    )


def _plan_write(
    op: PutOp,
    index: IndexSettings | None,
    max_value_bytes: int,
    transform: ValueTransform | None,
    now: datetime | None,
) -> WritePlan:
    namespace = tuple(op.namespace)
    prefix = encode_namespace(namespace)
    if op.value is None:
        return WritePlan(prefix, op.key, None, None, None)
    value_json = encode_value(op.value, max_bytes=max_value_bytes, namespace=namespace, key=op.key)
    if index is None:
        check_index(op.index)
        texts = None
    else:
        texts = tuple(item_texts(index, op.value, op.index))
    if transform is not None:  # the caller's value is checked above, the stored one here
        if now is None:
            raise ConfigurationError("a store with a value transform plans writes with a time")
        stored = transform.seal(
            namespace,
            op.key,
            dict(op.value),
            value_json,
            written_at=now,
            indexed=top_fields(texts or ()),
        )
        value_json = encode_value(
            stored, max_bytes=max_value_bytes, namespace=namespace, key=op.key
        )
    return WritePlan(prefix, op.key, value_json, check_ttl(op.ttl), texts)


# Items are built by filling their slots: LangGraph's constructors re-check types we
# already know (datetimes from the driver, tuples from the codec), at a cost per row that
# shows in every search. tests/core/test_items.py holds the two ways equal.


def item_from_row(namespace: tuple[str, ...], row: Sequence[Any]) -> Item:
    """Build an Item from a (prefix, key, value, created_at, updated_at, ...) row."""
    item = Item.__new__(Item)
    item.value = decode_value(row[2])
    item.key = row[1]
    item.namespace = namespace
    item.created_at = row[3]
    item.updated_at = row[4]
    return item


def search_item_from_row(row: Sequence[Any], score: float | None) -> SearchItem:
    """Build a SearchItem from a (prefix, key, value, created_at, updated_at, ...) row."""
    item = SearchItem.__new__(SearchItem)
    item.value = decode_value(row[2])
    item.key = row[1]
    item.namespace = decode_namespace(row[0])
    item.created_at = row[3]
    item.updated_at = row[4]
    item.score = score
    return item


def check_timestamp(now: datetime) -> datetime:
    """Refuse naive datetimes from a custom clock (they would be read as server-local)."""
    if now.tzinfo is None:
        raise ConfigurationError("the store's clock must return timezone-aware datetimes")
    return now

"""Filters: typed comparisons on nested paths, evaluated in the database."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langgraph.store.base import PutOp

from langmem_prod import errors
from langmem_prod.store._filter import MAX_FILTER_CONDITIONS, MAX_FILTER_DEPTH
from tests import reference
from tests.contract.conftest import Subject

ITEMS = {
    "n2": {"score": 2, "name": "bob", "meta": {"level": 2, "tags": ["x"]}},
    "n9": {"score": 9, "name": "alice", "meta": {"level": 9}},
    "n10": {"score": 10, "name": "Zed", "active": True},
    "n10f": {"score": 10.0, "name": "éclair", "active": False},
    "n25": {"score": 25.5, "name": "10", "meta": {"level": "high"}},
    "s": {"score": "100", "name": None},
    "none": {"other": 1},
}


@pytest.fixture
async def filled(store: Subject) -> Subject:
    await store.batch([PutOp(("f",), key, value) for key, value in ITEMS.items()])
    return store


async def keys(store: Subject, filter: dict) -> set[str]:
    return {i.key for i in await store.search(("f",), filter=filter, limit=100)}


def expected(filter: dict) -> set[str]:
    return {k for k, v in ITEMS.items() if reference.matches(v, filter)}


CASES = [
    {"score": {"$gte": 10}},  # numbers compare as numbers: 2 and 9 do not match
    {"score": {"$gt": 9, "$lt": 25}},
    {"score": {"$lte": 9.5}},
    {"score": 10},  # 10 == 10.0
    {"score": "100"},  # the string, not the number
    {"score": {"$gt": "1"}},  # strings compare only with strings
    {"name": {"$gte": "a"}},  # code-point order: "Zed" < "a" < "é"
    {"name": {"$lt": "a"}},
    {"name": None},  # JSON null, present
    {"name": {"$exists": False}},
    {"name": {"$exists": True}},
    {"active": True},  # true is not 1
    {"active": 1},
    {"meta.level": {"$gte": 5}},
    {"meta.level": "high"},
    {"meta.tags": ["x"]},
    {"meta.tags.0": "x"},
    {"meta": {"level": 9}},  # a plain dict compares the whole value
    {"name": {"$ne": "bob"}},  # $ne also matches where the path is missing
    {"score": {"$in": [2, 10, "100"]}},
    {"score": {"$nin": [2, 10]}},
    {"meta.level": {"$in": [2, "high"]}},
    {"score": {"$gte": 2}, "name": {"$ne": "alice"}},
    {"missing.path": {"$exists": False}},
    {"score": {"$eq": 25.5}},
]


LOGICAL_CASES = [
    {"$or": [{"score": {"$lt": 5}}, {"name": "alice"}]},
    {"$and": [{"score": {"$gte": 2}}, {"score": {"$lt": 10}}]},
    {"$not": {"score": {"$gte": 10}}},  # also items without a number there
    {"$not": {"name": None}},
    {"$not": {"score": {"$gt": 5}, "name": {"$ne": "bob"}}},  # not all of them
    {"$or": [{"$not": {"meta.level": {"$exists": True}}}, {"active": True}]},
    {"score": {"$gte": 2}, "$or": [{"name": "bob"}, {"meta.level": "high"}]},
    {"$not": {"$or": [{"score": 10}, {"name": {"$in": ["bob", "alice"]}}]}},
    {"$and": [{"$or": [{"other": 1}, {"score": 2}]}, {"$not": {"$not": {"name": "bob"}}}]},
    {"$or": [{"meta": {"level": 9}}, {"meta.tags": ["x"]}]},
    {"$not": {"$and": [{"name": {"$exists": True}}, {"score": {"$in": [2, 9, 10]}}]}},
    {"$or": [{"$and": [{"score": {"$gt": 9}}, {"active": False}]}, {"other": {"$gte": 1}}]},
]
INF, NAN = math.inf, math.nan
SPECIAL_CASES = [
    {"score": {"$lt": INF}},  # every number, nothing else
    {"score": {"$lte": INF}},
    {"score": {"$gt": -INF}},
    {"score": {"$gte": -INF}},
    {"score": {"$gt": INF}},
    {"score": {"$gte": INF}},
    {"score": {"$lt": -INF}},
    {"score": {"$lte": -INF}},
    {"score": INF},
    {"score": {"$ne": -INF}},
    {"score": {"$eq": NAN}},  # NaN equals nothing
    {"score": NAN},
    {"score": {"$ne": NAN}},  # ... so every item differs from it, as in InMemoryStore
    {"score": {"$gt": NAN}},
    {"score": {"$lte": NAN}},
    {"score": {"$in": [NAN, 2, INF]}},
    {"score": {"$nin": [NAN]}},
    {"score": {"$nin": [NAN, 2]}},
    {"meta": {"level": NAN}},
    {"meta.tags": ["x", NAN]},
    {"name": "bob\x00"},  # a string with NUL equals nothing
    {"name": {"$ne": "b\x00"}},
    {"name": {"$gt": "\x00"}},  # ... and orders against nothing
    {"name": {"$lt": "zzz\x00"}},
    {"name": {"$in": ["bob", "x\x00"]}},
    {"name": {"$nin": ["bob", "x\x00"]}},
    {"meta": {"level\x00": 9}},
    {"na\x00me": "bob"},  # no value holds such a path
    {"na\x00me": {"$exists": False}},
    {"na\x00me": {"$ne": 1}},
    {"$not": {"score": {"$lt": INF}}},
    {"$or": [{"score": NAN}, {"name": "bob"}]},
    {"$and": [{"score": {"$ne": NAN}}, {"name": {"$gte": "b"}}]},
    {"$not": {"score": NAN}},
]


@pytest.mark.parametrize("filter", CASES, ids=[str(c) for c in CASES])
async def test_filter_cases(filled: Subject, filter: dict) -> None:
    assert await keys(filled, filter) == expected(filter)


@pytest.mark.parametrize("filter", LOGICAL_CASES, ids=[str(c) for c in LOGICAL_CASES])
async def test_and_or_not(filled: Subject, filter: dict) -> None:
    assert await keys(filled, filter) == expected(filter)


@pytest.mark.parametrize("filter", SPECIAL_CASES, ids=[repr(c) for c in SPECIAL_CASES])
async def test_nan_infinities_and_nul_are_results(filled: Subject, filter: dict) -> None:
    assert await keys(filled, filter) == expected(filter)


async def test_special_operands_as_in_memory_store(filled: Subject) -> None:
    numbers = {"n2", "n9", "n10", "n10f", "n25"}
    assert await keys(filled, {"score": {"$lt": INF}}) == numbers
    assert await keys(filled, {"score": {"$gt": -INF}}) == numbers
    assert await keys(filled, {"score": {"$eq": NAN}}) == set()
    assert await keys(filled, {"score": {"$ne": NAN}}) == set(ITEMS)
    assert await keys(filled, {"name": "bob\x00"}) == set()
    assert await keys(filled, {"$or": [{"name": "bob"}, {"name": "alice"}]}) == {"n2", "n9"}
    assert await keys(filled, {"$not": {"score": {"$gte": 10}}}) == {"n2", "n9", "s", "none"}
    # Values written still refuse what filters now take as results.
    for value in ({"x": NAN}, {"x": [INF]}, {"x": "a\x00"}):
        with pytest.raises(errors.InvalidValueError):
            await filled.put(("f",), "bad", value)
    assert await keys(filled, {"x": {"$exists": True}}) == set()


def _nested(depth: int) -> dict:
    filter: dict = {"score": 2}
    for level in range(depth):
        filter = {("$not", "$and", "$or")[level % 3]: filter if level % 3 == 0 else [filter]}
    return filter


async def test_nesting_is_bounded(filled: Subject) -> None:
    deepest = _nested(MAX_FILTER_DEPTH - 1)
    assert await keys(filled, deepest) == expected(deepest)
    with pytest.raises(errors.InvalidFilterError, match=f"more than {MAX_FILTER_DEPTH} levels"):
        await filled.search(("f",), filter=_nested(MAX_FILTER_DEPTH))
    wide = {"$or": [{"score": i} for i in range(MAX_FILTER_CONDITIONS + 1)]}
    with pytest.raises(errors.InvalidFilterError, match="more than 1000 conditions"):
        await filled.search(("f",), filter=wide)
    wide["$or"].pop()
    assert await keys(filled, wide) == {"n2", "n9", "n10", "n10f"}


async def test_numeric_filters_are_typed(filled: Subject) -> None:
    assert await keys(filled, {"score": {"$gte": 10}}) == {"n10", "n10f", "n25"}


async def test_filter_with_paging(filled: Subject) -> None:
    everything = await filled.search(("f",), filter={"score": {"$gte": 0}}, limit=100)
    first = await filled.search(("f",), filter={"score": {"$gte": 0}}, limit=2)
    rest = await filled.search(("f",), filter={"score": {"$gte": 0}}, limit=100, offset=2)
    assert [i.key for i in first + rest] == [i.key for i in everything]


# Property test: random items and filters against the reference model. ----------------

# Quotes, backslashes, colons and control characters in strings, and numbers written
# with exponents, keep the Redis scripts' text prefilters honest (see redis._gen._needle).
text = st.text(alphabet='abAé0"\\:\n\x01', max_size=3)
number = st.one_of(
    st.integers(-20, 20),
    st.floats(-20, 20, allow_nan=False, allow_infinity=False),
    st.sampled_from([10**17, -(10**17), 1e20, -2.5e-7]),
)
leaf = st.one_of(st.none(), st.booleans(), number, text)
json_value = st.recursive(
    leaf,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("abc"), inner, max_size=3)
    ),
    max_leaves=6,
)
item_value = st.dictionaries(st.sampled_from("abc"), json_value, max_size=3)
paths = st.sampled_from(
    ["a", "b", "c", "a.b", "a.c", "b.a", "a.0", "b.1", "c.-1", "a.b.c", "b\x00", "a.\x00"]
)
# Operands no stored value holds: results, not errors (NaN equals nothing, infinities
# order as numbers, a string with NUL equals and orders against nothing).
special = st.sampled_from([math.nan, math.inf, -math.inf, "a\x00", "\x00"])
comparable = st.one_of(number, text, special)
operand = st.one_of(
    json_value,
    special,
    st.lists(st.one_of(leaf, special), min_size=1, max_size=2),
    st.dictionaries(st.sampled_from(["a", "b\x00"]), st.one_of(leaf, special), max_size=2),
)
operator_spec = st.one_of(
    st.tuples(st.sampled_from(["$eq", "$ne"]), operand),
    st.tuples(st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), comparable),
    st.tuples(st.sampled_from(["$in", "$nin"]), st.lists(operand, max_size=3)),
    st.tuples(st.just("$exists"), st.booleans()),
)
field_filters = st.dictionaries(
    paths,
    st.one_of(
        operand.filter(lambda v: not (isinstance(v, dict) and any(k.startswith("$") for k in v))),
        st.lists(operator_spec, min_size=1, max_size=2).map(dict),
    ),
    min_size=1,
    max_size=2,
)
filters = st.recursive(
    field_filters,
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=3).map(lambda fs: {"$and": fs}),
        st.lists(inner, min_size=1, max_size=3).map(lambda fs: {"$or": fs}),
        inner.map(lambda f: {"$not": f}),
        st.tuples(field_filters, inner).map(lambda pair: {**pair[0], "$or": [pair[1]]}),
    ),
    max_leaves=8,
)
_counter = itertools.count()


@pytest.mark.slow
@settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(items=st.lists(item_value, min_size=1, max_size=12), filter=filters)
def test_filters_match_the_reference(sync_store, items: list[dict], filter: dict) -> None:
    namespace = ("prop", str(next(_counter)))
    sync_store.batch([PutOp(namespace, str(i), v) for i, v in enumerate(items)])
    found = {i.key for i in sync_store.search(namespace, filter=filter, limit=100)}
    assert found == {str(i) for i, v in enumerate(items) if reference.matches(v, filter)}

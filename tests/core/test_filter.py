"""The filter parser, with no I/O: logical groups, folding, bounds and special operands."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from langmem_prod import errors
from langmem_prod.store._filter import (
    ALWAYS,
    MAX_FILTER_CONDITIONS,
    MAX_FILTER_DEPTH,
    NEVER,
    Condition,
    Group,
    Node,
    filter_fields,
    parse_filter,
)
from langmem_prod.store.postgres._filter_sql import condition_sql
from tests import reference


def eq(path: str, operand: Any) -> Condition:
    return Condition(tuple(path.split(".")), "$eq", operand)


def test_and_is_flattened_into_the_top_level() -> None:
    parsed = parse_filter({"a": 1, "$and": [{"b": 2}, {"$and": [{"c": 3}]}]})
    assert parsed == (eq("a", 1), eq("b", 2), eq("c", 3))


def test_or_and_not_are_groups() -> None:
    (node,) = parse_filter({"$or": [{"a": 1}, {"b": 2, "c": 3}]})
    assert node == Group("$or", (eq("a", 1), Group("$and", (eq("b", 2), eq("c", 3)))))
    (node,) = parse_filter({"$not": {"a": 1, "b": 2}})
    assert node == Group("$not", (eq("a", 1), eq("b", 2)))  # not all of them
    (node,) = parse_filter({"$not": {"$or": [{"a": 1}, {"b": 2}]}})
    assert node == Group("$not", (Group("$or", (eq("a", 1), eq("b", 2))),))
    assert parse_filter({"$not": {"$not": {"a": 1, "b": 2}}}) == (eq("a", 1), eq("b", 2))


def test_conditions_no_value_can_meet_fold_to_constants() -> None:
    assert parse_filter({"a": math.nan}) == (NEVER,)
    assert parse_filter({"a": {"$ne": math.nan}}) == ()  # every item
    assert parse_filter({"a": {"$in": [math.nan, "x\x00"]}}) == (NEVER,)
    assert parse_filter({"a": {"$in": [math.nan, 1]}}) == (Condition(("a",), "$in", (1,)),)
    assert parse_filter({"a": {"$nin": [math.inf]}}) == ()
    assert parse_filter({"a": {"$lt": math.inf}}) == (Condition(("a",), "$number", True),)
    assert parse_filter({"a": {"$gte": -math.inf}}) == (Condition(("a",), "$number", True),)
    assert parse_filter({"a": {"$gt": math.inf}}) == (NEVER,)
    assert parse_filter({"a": {"$lte": math.nan}}) == (NEVER,)
    assert parse_filter({"a": {"$gt": "b\x00"}}) == (NEVER,)
    assert parse_filter({"a\x00": {"$exists": False}}) == ()
    assert parse_filter({"a\x00": {"$exists": True}}) == (NEVER,)
    assert parse_filter({"a": 1, "$or": [{"b": math.nan}, {"c": 2}]}) == (eq("a", 1), eq("c", 2))
    assert parse_filter({"$or": [{"b": {"$ne": math.nan}}, {"c": 2}]}) == ()
    assert parse_filter({"$not": {"b": {"$ne": math.nan}}}) == (NEVER,)
    assert parse_filter({"a": 1, "b": math.nan}) == (NEVER,)


@pytest.mark.parametrize(
    ("filter", "match"),
    [
        ({"$nor": [{"a": 1}]}, r"unknown filter key '\$nor'.*\$and, \$or, \$not"),
        ({"$": 1}, r"unknown filter key '\$'"),
        ({"$and": []}, "non-empty list"),
        ({"$or": ()}, "non-empty list"),
        ({"$and": {"a": 1}}, "non-empty list"),
        ({"$or": ["a"]}, "must be a dict"),
        ({"$not": 1}, r"\$not needs a filter dict"),
        ({"$or": [{"a": {"$regex": "x"}}]}, "unknown filter operator"),
        ({"$not": {"a": {"$gt": [1]}}}, "number or a string"),
        ({"$or": [{"a": "\ud800"}]}, "lone surrogate"),
        ({"a\x00": {"$gt": [1]}}, "number or a string"),  # operands are checked even there
    ],
)
def test_bad_logical_filters(filter: dict, match: str) -> None:
    with pytest.raises(errors.InvalidFilterError, match=match):
        parse_filter(filter)


def _nested(depth: int) -> dict:
    filter: dict = {"a": 1}
    for _ in range(depth):
        filter = {"$or": [filter, {"b": 2}]}
    return filter


def test_depth_and_size_are_bounded() -> None:
    assert parse_filter(_nested(MAX_FILTER_DEPTH - 1))
    with pytest.raises(errors.InvalidFilterError, match="levels deep"):
        parse_filter(_nested(MAX_FILTER_DEPTH))
    with pytest.raises(errors.InvalidFilterError, match="levels deep"):
        parse_filter(_nested(100_000 // 2))  # no RecursionError, however deep
    parse_filter({"$or": [{"a": i} for i in range(MAX_FILTER_CONDITIONS)]})
    with pytest.raises(errors.InvalidFilterError, match="conditions"):
        parse_filter({"$or": [{"a": i} for i in range(MAX_FILTER_CONDITIONS + 1)]})
    with pytest.raises(errors.InvalidFilterError, match="conditions"):
        parse_filter({"a": {"$gt": 0, "$lt": 9}, "$and": [{"b": i} for i in range(999)]})


def test_filter_fields_reads_every_depth() -> None:
    nodes = parse_filter({"x.y": 1, "$not": {"$or": [{"z": 1}, {"w.v": {"$gt": 2}}]}})
    assert filter_fields(nodes) == {"x", "z", "w"}


def test_not_in_sql_is_two_valued() -> None:
    (node,) = parse_filter({"$not": {"a.b": {"$gt": 1}}})
    sql, params = condition_sql(node, "value")
    assert sql.startswith("NOT COALESCE((") and sql.endswith("), false)")
    assert params == [["a", "b"], ["a", "b"], "1"]
    assert condition_sql(NEVER, "value") == ("(false)", [])
    assert condition_sql(ALWAYS, "value") == ("(true)", [])


# Folding must not change a filter's meaning: evaluate the tree against the reference.
def _holds(node: Node, value: dict) -> bool:
    if isinstance(node, Group):
        results = [_holds(child, value) for child in node.children]
        return {"$and": all, "$or": any, "$not": lambda r: not all(r)}[node.op](results)
    if node.op == "$number":
        found = reference.value_at(value, node.path)
        return isinstance(found, int | float) and not isinstance(found, bool)
    path = ".".join(node.path)
    operand = list(node.operand) if node.op in ("$in", "$nin") else node.operand
    return reference.matches(value, {path: {node.op: operand}})


plain = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from(["x", "y"]))
special = st.sampled_from(["x\x00", math.nan, math.inf, -math.inf])
operand = st.one_of(plain, special)
ordered = st.one_of(st.integers(-3, 3), st.sampled_from(["x", "y"]), special)
values = st.dictionaries(st.sampled_from("ab"), st.one_of(plain, st.lists(plain, max_size=2)))
spec = st.one_of(
    operand,
    st.tuples(st.sampled_from(["$eq", "$ne"]), operand).map(lambda p: {p[0]: p[1]}),
    st.tuples(st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), ordered).map(lambda p: {p[0]: p[1]}),
    st.tuples(st.sampled_from(["$in", "$nin"]), st.lists(operand, max_size=2)).map(
        lambda p: {p[0]: p[1]}
    ),
    st.booleans().map(lambda b: {"$exists": b}),
)
field = st.dictionaries(st.sampled_from(["a", "b", "a.0", "b\x00"]), spec, min_size=1, max_size=2)
trees = st.recursive(
    field,
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=3).map(lambda fs: {"$and": fs}),
        st.lists(inner, min_size=1, max_size=3).map(lambda fs: {"$or": fs}),
        inner.map(lambda f: {"$not": f}),
    ),
    max_leaves=10,
)


@given(trees, values)
def test_the_parsed_tree_means_the_filter(filter: dict, value: dict) -> None:
    expected = reference.matches(value, filter)
    assert all(_holds(node, value) for node in parse_filter(filter)) == expected

"""Filter conditions as SQL over the `value` jsonb column, with typed comparisons.

Rules (the SQL twin of `store._filter`):
- the value at a path is `value -> 'a'` or `value #> '{a,b}'`: SQL NULL when missing;
- `$eq $ne $in $nin` compare jsonb values, which PostgreSQL compares by JSON type and
  numbers by value (1 = 1.0, true <> 1);
- orderings cast only a value of the operand's JSON type: numbers as `numeric` (exact,
  from the JSON text), strings as text in code-point order (COLLATE "C"); any other
  type, or a missing path, does not match;
- `$number` (internal: the value is a JSON number) is what an ordering against an
  infinity becomes;
- a group joins its children's predicates: `$and` with AND (no children: true), `$or`
  with OR (none: false), `$not` as `NOT COALESCE((all of them), false)`: a predicate on
  a missing path may be NULL, which NOT alone would leave NULL (not matching);
- every operand is a bound parameter; only operator SQL comes from this table, and the
  SQL of a condition depends only on its shape, so it is built once per shape.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

import orjson

from langmem_prod.store._filter import Condition, Group, Node

_ORDER_SQL = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_NUMBER = "(CASE WHEN jsonb_typeof({t}) = 'number' THEN ({t})::numeric END) {cmp} %s::numeric"
_STRING = (
    "(CASE WHEN jsonb_typeof({t}) = 'string' THEN {t} #>> ARRAY[]::text[] END) "
    'COLLATE "C" {cmp} %s'
)


def _json(operand: Any) -> str:
    """JSON text of an operand `parse_filter` accepted (finite, no NUL)."""
    try:
        return orjson.dumps(operand).decode()
    except TypeError:  # integers past 64 bits
        return json.dumps(operand, ensure_ascii=False, separators=(",", ":"))


def _json_list(operand: Any) -> list[list[str]]:
    return [[_json(v) for v in operand]]


def _ordering(cmp: str) -> Callable[[str], str]:
    def text(variant: str) -> str:
        return (_STRING if variant == "str" else _NUMBER).replace("{cmp}", cmp)

    return text


def _ordering_operand(operand: Any) -> list[Any]:
    return [operand if isinstance(operand, str) else _json(operand)]


# op -> (the predicate's SQL for an operand variant, the operand's parameters)
RULES: dict[str, tuple[Callable[[str], str], Callable[[Any], list[Any]]]] = {
    "$eq": (lambda _: "{t} = %s::jsonb", lambda v: [_json(v)]),
    "$ne": (lambda _: "{t} IS DISTINCT FROM %s::jsonb", lambda v: [_json(v)]),
    "$in": (lambda _: "COALESCE({t} = ANY(%b::jsonb[]), false)", _json_list),
    "$nin": (lambda _: "NOT COALESCE({t} = ANY(%b::jsonb[]), false)", _json_list),
    "$exists": (lambda v: "{t} IS NOT NULL" if v == "true" else "{t} IS NULL", lambda _: []),
    "$number": (lambda _: "jsonb_typeof({t}) = 'number'", lambda _: []),
    **{op: (_ordering(cmp), _ordering_operand) for op, cmp in _ORDER_SQL.items()},
}


def _variant(condition: Condition) -> str:
    """What, besides the operator, the SQL text depends on."""
    if condition.op == "$exists":
        return "true" if condition.operand else "false"
    return "str" if isinstance(condition.operand, str) else "other"


@functools.lru_cache(maxsize=1024)
def _predicate(op: str, variant: str, nested: bool, column: str) -> tuple[str, int]:
    target = f"({column} #> %b::text[])" if nested else f"({column} -> %s)"
    template = RULES[op][0](variant)
    return template.replace("{t}", target), template.count("{t}")


# group op -> (the joiner of its children's predicates, the SQL of no children, the wrapper)
_GROUPS: dict[str, tuple[str, str, str]] = {
    "$and": (" AND ", "true", "({})"),
    "$or": (" OR ", "false", "({})"),
    "$not": (" AND ", "true", "NOT COALESCE(({}), false)"),
}


def condition_sql(node: Node, column: str) -> tuple[str, list[Any]]:
    """Return the SQL predicate and parameters of one condition (or group) on `column`.

    >>> from langmem_prod.store._filter import parse_filter
    >>> sql, params = condition_sql(parse_filter({"a.b": {"$gte": 10}})[0], "value")
    >>> params
    [['a', 'b'], ['a', 'b'], '10']
    >>> sql, params = condition_sql(parse_filter({"$not": {"a": 1}})[0], "value")
    >>> sql, params
    ('NOT COALESCE(((value -> %s) = %s::jsonb), false)', ['a', '1'])
    """
    if isinstance(node, Group):
        return _group_sql(node, column)
    return _leaf_sql(node, column)


def _group_sql(group: Group, column: str) -> tuple[str, list[Any]]:
    joiner, empty, wrapper = _GROUPS[group.op]
    parts, params = [], list[Any]()
    for child in group.children:
        predicate, child_params = condition_sql(child, column)
        parts.append(predicate)
        params += child_params
    return wrapper.format(joiner.join(parts) if parts else empty), params


def _leaf_sql(condition: Condition, column: str) -> tuple[str, list[Any]]:
    nested = len(condition.path) > 1
    predicate, targets = _predicate(condition.op, _variant(condition), nested, column)
    path: Any = list(condition.path) if nested else condition.path[0]
    # The path parameters come first: every rule places its operand after the target.
    return predicate, [path] * targets + RULES[condition.op][1](condition.operand)

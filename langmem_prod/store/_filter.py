"""Search filters: parse LangGraph's filter dict into a typed, validated tree of conditions.

Rules:
- a filter maps a dotted path ("a.b" reads value["a"]["b"]) to either an operand, which
  means `$eq`, or a dict of operators; a dict mixing operators and plain keys is an error;
- a filter may also hold the logical keys `$and` and `$or` (a non-empty list of filters)
  and `$not` (a filter); they nest at most `MAX_FILTER_DEPTH` deep. Every key of a filter
  must hold, so `{"a": 1, "$or": [...]}` means both. Any other key starting with "$" at
  the top of a filter is an error (a field name starting with "$" cannot be filtered on);
- comparisons are typed as JSON: a number equals or orders only against a number (1 == 1.0),
  a string only against a string (by code point), true never equals 1;
- `$eq` and `$ne` compare whole JSON values exactly; `$ne`, `$nin` and `$exists: false`
  also match items where the path is missing; every other operator needs the path present;
- `$gt $gte $lt $lte` take a number or a string, `$in $nin` a list, `$exists` a bool;
- like LangGraph's `InMemoryStore`, an operand no stored value can hold is a result, not
  an error: NaN equals nothing (so `$ne` NaN matches every item), infinities order as
  numbers (`$lt` inf matches every number, `$gt` inf none), and a string with a NUL
  character (in an operand, an object key of one, or a path) equals and orders against
  nothing. The parser folds such conditions into `ALWAYS` / `NEVER` (`_IMPOSSIBLE`),
  so the backends never see them. Values written still refuse NaN, infinities and NUL;
- operands are otherwise checked here, before any I/O: lone surrogates are refused (in
  paths, strings and object keys alike), as are operands that nest deeper than values
  may (`MAX_VALUE_DEPTH`), with an iterative walk; a filter holds at most
  `MAX_FILTER_CONDITIONS` conditions.

The tree: a `Condition` compares one path; a `Group` combines conditions by `$and` (all
hold), `$or` (one holds) or `$not` (not all hold). `parse_filter` returns the conditions
that must all hold, with nested `$and`s flattened into them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from langmem_prod.errors import InvalidFilterError
from langmem_prod.store._text import has_surrogate
from langmem_prod.store._values import MAX_VALUE_DEPTH

Operator = Literal["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "$number"]
Logic = Literal["$and", "$or", "$not"]

ORDERING_OPERATORS: frozenset[str] = frozenset({"$gt", "$gte", "$lt", "$lte"})
OPERATORS: tuple[str, ...] = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists")
"""The operators a caller may use; `$number` (the value is a JSON number) is internal."""
LOGICAL_OPERATORS: tuple[str, ...] = ("$and", "$or", "$not")
MAX_FILTER_DEPTH = 16
"""How deep `$and`, `$or` and `$not` may nest."""
MAX_FILTER_CONDITIONS = 1_000
"""How many conditions one filter may hold, at every depth together."""


@dataclass(frozen=True, slots=True)
class Condition:
    """One comparison of the JSON value at `path` with `operand`."""

    path: tuple[str, ...]
    op: Operator
    operand: Any


@dataclass(frozen=True, slots=True)
class Group:
    """`$and`: all `children` hold; `$or`: one holds; `$not`: not all hold."""

    op: Logic
    children: tuple[Node, ...]


Node: TypeAlias = Condition | Group
ALWAYS = Group("$and", ())
"""The condition every item meets (all of none)."""
NEVER = Group("$or", ())
"""The condition no item meets (one of none)."""

# What a condition on a path that no value holds (a NUL in it) means, by operator.
_ON_MISSING: dict[str, bool] = {
    "$eq": False,
    "$ne": True,
    "$in": False,
    "$nin": True,
    **dict.fromkeys(ORDERING_OPERATORS, False),
}
# Ordering against an infinity: (op, sign of the infinity) -> every number, or none.
_INFINITE: dict[tuple[str, int], bool] = {
    ("$gt", -1): True,
    ("$gte", -1): True,
    ("$lt", 1): True,
    ("$lte", 1): True,
    ("$gt", 1): False,
    ("$gte", 1): False,
    ("$lt", -1): False,
    ("$lte", -1): False,
}


def parse_filter(filter: Mapping[str, Any] | None) -> tuple[Node, ...]:
    """Validate a LangGraph filter and return the conditions that must all hold.

    >>> for node in parse_filter({"score": {"$gte": 10}, "meta.kind": "note"}):
    ...     print(node)
    Condition(path=('score',), op='$gte', operand=10)
    Condition(path=('meta', 'kind'), op='$eq', operand='note')
    >>> parse_filter({"$or": [{"a": 1}, {"$not": {"b": 2}}]})[0].op
    '$or'
    >>> parse_filter({"score": {"$eq": float("nan")}}) == (NEVER,)
    True

    Raises:
        InvalidFilterError: an unknown operator, an operand of the wrong type, a bad path,
            a filter nested too deep or holding too many conditions.
    """
    if not filter:
        return ()
    nodes = _parse(filter, 1, [MAX_FILTER_CONDITIONS])
    for node in nodes:
        if type(node) is Group:
            break
    else:
        return tuple(nodes)  # plain conditions: nothing to fold
    folded = _all(nodes)
    if folded is ALWAYS:
        return ()
    return folded.children if isinstance(folded, Group) and folded.op == "$and" else (folded,)


def _parse(filter: object, depth: int, budget: list[int]) -> list[Node]:
    """The nodes of one filter dict (all must hold), each folded."""
    if not isinstance(filter, Mapping):
        raise InvalidFilterError(f"a filter must be a dict, not {type(filter).__name__}")
    nodes: list[Node] = []
    for raw_path, spec in filter.items():
        if type(raw_path) is str and raw_path[:1] == "$":
            nodes.append(_logical(raw_path, spec, depth, budget))
            continue
        path = _parse_path(raw_path)
        if (type(spec) is dict or isinstance(spec, Mapping)) and any(_is_operator(k) for k in spec):
            if not all(_is_operator(k) for k in spec):
                raise InvalidFilterError(
                    f"the filter on {raw_path!r} mixes operators and plain keys; "
                    "use either {'$op': operand, ...} or a plain value to compare with"
                )
            pairs = list(spec.items())
        else:
            pairs = [("$eq", spec)]
        budget[0] -= len(pairs)
        if budget[0] < 0:
            raise InvalidFilterError(
                f"a filter holds more than {MAX_FILTER_CONDITIONS} conditions; split the search"
            )
        for op, operand in pairs:
            nodes.append(_condition(path, raw_path, op, operand))
    return nodes


def _logical(key: str, spec: Any, depth: int, budget: list[int]) -> Node:
    if key not in LOGICAL_OPERATORS:
        raise InvalidFilterError(
            f"unknown filter key {key!r}; the keys starting with '$' at the top of a filter "
            f"are {', '.join(LOGICAL_OPERATORS)} (operators such as $gt go inside a field: "
            "{'field': {'$gt': 1}})"
        )
    if depth >= MAX_FILTER_DEPTH:
        raise InvalidFilterError(
            f"{key} nests more than {MAX_FILTER_DEPTH} levels deep; flatten the filter"
        )
    if key == "$not":
        if not isinstance(spec, Mapping):
            raise InvalidFilterError("$not needs a filter dict, e.g. {'$not': {'kind': 'draft'}}")
        return _negate(_parse(spec, depth + 1, budget))
    if not isinstance(spec, list | tuple) or not spec:
        raise InvalidFilterError(
            f"{key} needs a non-empty list of filter dicts, "
            f"e.g. {{'{key}': [{{'a': 1}}, {{'b': 2}}]}}"
        )
    if key == "$and":
        return _all([node for child in spec for node in _parse(child, depth + 1, budget)])
    return _any([_all(_parse(child, depth + 1, budget)) for child in spec])


def _all(nodes: list[Node]) -> Node:
    """All of `nodes`, folded: nested `$and`s flattened, `ALWAYS` dropped, `NEVER` wins."""
    return _fold("$and", nodes, absorbing=NEVER, neutral=ALWAYS)


def _any(nodes: list[Node]) -> Node:
    """One of `nodes`, folded: nested `$or`s flattened, `NEVER` dropped, `ALWAYS` wins."""
    return _fold("$or", nodes, absorbing=ALWAYS, neutral=NEVER)


def _fold(op: Logic, nodes: list[Node], *, absorbing: Node, neutral: Node) -> Node:
    kept: list[Node] = []
    for node in nodes:
        if isinstance(node, Group) and node.op == op:
            kept.extend(node.children)
        elif node is absorbing:
            return absorbing
        else:  # `neutral` is a childless `op` group: flattened away above
            kept.append(node)
    if not kept:
        return neutral
    return kept[0] if len(kept) == 1 else Group(op, tuple(kept))


def _negate(nodes: list[Node]) -> Node:
    """Not all of `nodes`, folded."""
    inner = _all(nodes)
    if inner is ALWAYS:
        return NEVER
    if inner is NEVER:
        return ALWAYS
    if isinstance(inner, Group) and inner.op == "$not":
        return _all(list(inner.children))
    if isinstance(inner, Group) and inner.op == "$and":
        return Group("$not", inner.children)
    return Group("$not", (inner,))


def _is_operator(key: object) -> bool:
    return isinstance(key, str) and key.startswith("$")


def _parse_path(raw: object) -> tuple[str, ...]:
    if not isinstance(raw, str) or not raw:
        raise InvalidFilterError("filter keys must be non-empty strings such as 'a' or 'a.b'")
    path = tuple(raw.split("."))
    if any(not segment for segment in path) or has_surrogate(raw):
        raise InvalidFilterError(
            "a filter path has an empty segment or a lone surrogate; "
            "use 'a.b.c' with valid Unicode text"
        )
    return path


def _condition(path: tuple[str, ...], raw_path: str, op: str, operand: Any) -> Node:
    if op not in OPERATORS:
        raise InvalidFilterError(
            f"unknown filter operator {op!r} on {raw_path!r}; use one of {', '.join(OPERATORS)}"
        )
    if op in ORDERING_OPERATORS:
        if isinstance(operand, bool) or not isinstance(operand, int | float | str):
            raise InvalidFilterError(f"{op} on {raw_path!r} needs a number or a string operand")
        node = _ordering(path, op, operand, _storable(operand, op, raw_path))
    elif op in ("$in", "$nin"):
        if not isinstance(operand, list | tuple):
            raise InvalidFilterError(f"{op} on {raw_path!r} needs a list of values")
        # An element no value can equal changes nothing; with none left, $in is false.
        operand = tuple(element for element in operand if _storable(element, op, raw_path))
        empty = NEVER if op == "$in" else ALWAYS
        node = Condition(path, op, operand) if operand else empty  # type: ignore[arg-type]
    elif op == "$exists":
        if not isinstance(operand, bool):
            raise InvalidFilterError(f"{op} on {raw_path!r} needs true or false")
        node = Condition(path, "$exists", operand)
    elif _storable(operand, op, raw_path):
        node = Condition(path, op, operand)  # type: ignore[arg-type]
    else:  # nothing equals it
        node = NEVER if op == "$eq" else ALWAYS
    if "\x00" in raw_path:  # no value holds the path
        missing = (not operand) if op == "$exists" else _ON_MISSING[op]
        return ALWAYS if missing else NEVER
    return node


def _ordering(path: tuple[str, ...], op: str, operand: Any, storable: bool) -> Node:
    if storable:
        return Condition(path, op, operand)  # type: ignore[arg-type]
    if isinstance(operand, float) and math.isinf(operand):
        every = _INFINITE[op, 1 if operand > 0 else -1]
        return Condition(path, "$number", True) if every else NEVER
    return NEVER  # NaN, or a string with a NUL: orders against nothing


def _storable(operand: Any, op: str, raw_path: str) -> bool:
    """Whether a stored value could hold `operand` (no NaN, infinity or NUL); no recursion.

    Raises:
        InvalidFilterError: the operand is not JSON, nests too deep, or holds a lone surrogate.
    """
    kind = type(operand)
    if kind is str:  # the common operands first
        return _check_text(operand, op, raw_path)
    if kind is int or kind is bool or operand is None:
        return True
    storable = True
    stack = [(operand, 1)]
    while stack:
        node, depth = stack.pop()
        if node is None or isinstance(node, bool | int):
            continue
        if isinstance(node, float):
            storable = storable and math.isfinite(node)
        elif isinstance(node, str):
            storable = _check_text(node, op, raw_path) and storable
        elif depth > MAX_VALUE_DEPTH:
            raise InvalidFilterError(
                f"{op} on {raw_path!r}: the operand nests more than {MAX_VALUE_DEPTH} levels deep"
            )
        elif isinstance(node, list | tuple):
            stack.extend((element, depth + 1) for element in node)
        elif isinstance(node, Mapping):
            for key, element in node.items():
                if not isinstance(key, str):
                    raise InvalidFilterError(f"{op} on {raw_path!r}: object keys must be strings")
                storable = _check_text(key, op, raw_path) and storable
                stack.append((element, depth + 1))
        else:
            raise InvalidFilterError(
                f"{op} on {raw_path!r}: {type(node).__name__} is not a JSON value"
            )
    return storable


def _check_text(text: str, op: str, raw_path: str) -> bool:
    """Whether a stored value could hold `text` (no NUL); refuses lone surrogates."""
    if has_surrogate(text):
        raise InvalidFilterError(
            f"{op} on {raw_path!r}: a string holds a lone surrogate (U+D800-U+DFFF); "
            "pass valid Unicode"
        )
    return "\x00" not in text


def filter_fields(nodes: tuple[Node, ...]) -> set[str]:
    """The top-level fields of a value that conditions read, at any depth of the tree.

    >>> sorted(filter_fields(parse_filter({"a.b": 1, "$or": [{"c": 2}, {"$not": {"d": 3}}]})))
    ['a', 'c', 'd']
    """
    found: set[str] = set()
    stack = list(nodes)
    while stack:
        node = stack.pop()
        if isinstance(node, Group):
            stack.extend(node.children)
        else:
            found.add(node.path[0])
    return found

"""Search filters: parse LangGraph's filter dict into typed, validated conditions.

Rules:
- a filter maps a dotted path ("a.b" reads value["a"]["b"]) to either an operand, which
  means `$eq`, or a dict of operators; a dict mixing operators and plain keys is an error;
- comparisons are typed as JSON: a number equals or orders only against a number (1 == 1.0),
  a string only against a string (by code point), true never equals 1;
- `$eq` and `$ne` compare whole JSON values exactly; `$ne`, `$nin` and `$exists: false`
  also match items where the path is missing; every other operator needs the path present;
- `$gt $gte $lt $lte` take a number or a string, `$in $nin` a list, `$exists` a bool;
- operands are checked here, before any I/O: NaN, infinities, NUL characters and lone
  surrogates are refused (in paths, strings and object keys alike), as are operands that
  nest deeper than values may (`MAX_VALUE_DEPTH`), with an iterative walk.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from langmem_prod.errors import InvalidFilterError
from langmem_prod.store._text import has_surrogate
from langmem_prod.store._values import MAX_VALUE_DEPTH

Operator = Literal["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists"]

ORDERING_OPERATORS: frozenset[str] = frozenset({"$gt", "$gte", "$lt", "$lte"})
OPERATORS: tuple[str, ...] = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists")


@dataclass(frozen=True, slots=True)
class Condition:
    """One comparison of the JSON value at `path` with `operand`."""

    path: tuple[str, ...]
    op: Operator
    operand: Any


def parse_filter(filter: Mapping[str, Any] | None) -> tuple[Condition, ...]:
    """Validate a LangGraph filter and return its conditions.

    >>> for condition in parse_filter({"score": {"$gte": 10}, "meta.kind": "note"}):
    ...     print(condition)
    Condition(path=('score',), op='$gte', operand=10)
    Condition(path=('meta', 'kind'), op='$eq', operand='note')

    Raises:
        InvalidFilterError: an unknown operator, an operand of the wrong type, a bad path.
    """
    if not filter:
        return ()
    if not isinstance(filter, Mapping):
        raise InvalidFilterError(f"a filter must be a dict, not {type(filter).__name__}")
    conditions: list[Condition] = []
    for raw_path, spec in filter.items():
        path = _parse_path(raw_path)
        if (type(spec) is dict or isinstance(spec, Mapping)) and any(_is_operator(k) for k in spec):
            if not all(_is_operator(k) for k in spec):
                raise InvalidFilterError(
                    f"the filter on {raw_path!r} mixes operators and plain keys; "
                    "use either {'$op': operand, ...} or a plain value to compare with"
                )
            conditions.extend(
                _condition(path, raw_path, op, operand) for op, operand in spec.items()
            )
        else:
            conditions.append(_condition(path, raw_path, "$eq", spec))
    return tuple(conditions)


def _is_operator(key: object) -> bool:
    return isinstance(key, str) and key.startswith("$")


def _parse_path(raw: object) -> tuple[str, ...]:
    if not isinstance(raw, str) or not raw:
        raise InvalidFilterError("filter keys must be non-empty strings such as 'a' or 'a.b'")
    path = tuple(raw.split("."))
    if any(not segment for segment in path) or "\x00" in raw or has_surrogate(raw):
        raise InvalidFilterError(
            "a filter path has an empty segment, a NUL character or a lone surrogate; "
            "use 'a.b.c' with valid Unicode text"
        )
    return path


def _condition(path: tuple[str, ...], raw_path: str, op: str, operand: Any) -> Condition:
    if op not in OPERATORS:
        raise InvalidFilterError(
            f"unknown filter operator {op!r} on {raw_path!r}; use one of {', '.join(OPERATORS)}"
        )
    where = f"{op} on {raw_path!r}"
    if op in ORDERING_OPERATORS:
        if isinstance(operand, bool) or not isinstance(operand, int | float | str):
            raise InvalidFilterError(f"{where} needs a number or a string operand")
        _check_json(operand, where)
    elif op in ("$in", "$nin"):
        if not isinstance(operand, list | tuple):
            raise InvalidFilterError(f"{where} needs a list of values")
        operand = tuple(operand)
        for element in operand:
            _check_json(element, where)
    elif op == "$exists":
        if not isinstance(operand, bool):
            raise InvalidFilterError(f"{where} needs true or false")
    else:
        _check_json(operand, where)
    return Condition(path, op, operand)  # type: ignore[arg-type]


def _check_json(operand: Any, where: str) -> None:
    """Refuse operands JSON cannot hold or the backends cannot compare (no recursion)."""
    stack = [(operand, 1)]
    while stack:
        node, depth = stack.pop()
        if node is None or isinstance(node, bool | int):
            continue
        if isinstance(node, float):
            if not math.isfinite(node):
                raise InvalidFilterError(f"{where}: NaN and infinities cannot be compared")
        elif isinstance(node, str):
            _check_text(node, where)
        elif depth > MAX_VALUE_DEPTH:
            raise InvalidFilterError(
                f"{where}: the operand nests more than {MAX_VALUE_DEPTH} levels deep"
            )
        elif isinstance(node, list | tuple):
            stack.extend((element, depth + 1) for element in node)
        elif isinstance(node, Mapping):
            for key, element in node.items():
                if not isinstance(key, str):
                    raise InvalidFilterError(f"{where}: object keys must be strings")
                _check_text(key, where)
                stack.append((element, depth + 1))
        else:
            raise InvalidFilterError(f"{where}: {type(node).__name__} is not a JSON value")


def _check_text(text: str, where: str) -> None:
    if "\x00" in text:
        raise InvalidFilterError(f"{where}: strings cannot contain NUL characters")
    if has_surrogate(text):
        raise InvalidFilterError(
            f"{where}: a string holds a lone surrogate (U+D800-U+DFFF); pass valid Unicode"
        )

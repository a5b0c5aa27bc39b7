"""A small pure-Python model of the store's filter and namespace semantics.

It states the documented rules directly (JSON-typed comparisons, missing paths, label
patterns, `$and` / `$or` / `$not`, NaN equal to nothing, infinities ordered as numbers, a
string with NUL ordering against nothing) so property tests can compare the databases'
answers with it.
"""

from __future__ import annotations

import re
from typing import Any

MISSING = object()
_INDEX = re.compile(r"-?\d+")


def value_at(value: Any, path: tuple[str, ...]) -> Any:
    for segment in path:
        if isinstance(value, dict):
            value = value.get(segment, MISSING)
        elif isinstance(value, list) and _INDEX.fullmatch(segment):
            index = int(segment)
            if index < 0:
                index += len(value)
            value = value[index] if 0 <= index < len(value) else MISSING
        else:
            return MISSING
        if value is MISSING:
            return MISSING
    return value


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def json_equal(a: Any, b: Any) -> bool:
    """Equality of JSON values: numbers by value, everything else by type and content."""
    if _is_number(a) or _is_number(b):
        return _is_number(a) and _is_number(b) and a == b
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _order(actual: Any, operand: Any, op: str) -> bool:
    if isinstance(operand, str):
        if not isinstance(actual, str) or "\x00" in operand:
            return False
    elif not _is_number(actual):
        return False
    return {
        "$gt": actual > operand,
        "$gte": actual >= operand,
        "$lt": actual < operand,
        "$lte": actual <= operand,
    }[op]


def matches(value: dict, filter: dict) -> bool:
    for raw_path, spec in filter.items():
        if raw_path == "$and":
            ok = all(matches(value, f) for f in spec)
        elif raw_path == "$or":
            ok = any(matches(value, f) for f in spec)
        elif raw_path == "$not":
            ok = not matches(value, spec)
        else:
            ok = _field_matches(value, raw_path, spec)
        if not ok:
            return False
    return True


def _field_matches(value: dict, raw_path: str, spec: Any) -> bool:
    path = tuple(raw_path.split("."))
    ops = spec if isinstance(spec, dict) and any(k.startswith("$") for k in spec) else {"$eq": spec}
    actual = value_at(value, path)
    present = actual is not MISSING
    for op, operand in ops.items():
        if op == "$eq":
            ok = present and json_equal(actual, operand)
        elif op == "$ne":
            ok = not (present and json_equal(actual, operand))
        elif op == "$in":
            ok = present and any(json_equal(actual, x) for x in operand)
        elif op == "$nin":
            ok = not (present and any(json_equal(actual, x) for x in operand))
        elif op == "$exists":
            ok = present == operand
        else:
            ok = present and _order(actual, operand, op)
        if not ok:
            return False
    return True


def namespace_matches(namespace: tuple[str, ...], kind: str, pattern: tuple[str, ...]) -> bool:
    if len(namespace) < len(pattern):
        return False
    labels = namespace if kind == "prefix" else namespace[len(namespace) - len(pattern) :]
    return all(p == "*" or p == label for p, label in zip(pattern, labels, strict=False))


def list_namespaces(
    namespaces: set[tuple[str, ...]],
    prefix: tuple[str, ...] | None,
    suffix: tuple[str, ...] | None,
    max_depth: int | None,
    limit: int,
    offset: int,
) -> list[tuple[str, ...]]:
    chosen = [
        ns
        for ns in namespaces
        if (not prefix or namespace_matches(ns, "prefix", prefix))
        and (not suffix or namespace_matches(ns, "suffix", suffix))
    ]
    if max_depth is not None:
        chosen = list({ns[:max_depth] for ns in chosen})
    return sorted(chosen)[offset : offset + limit]

"""Scoping a batch to a tenant, so callers neither see nor pass its prefix (no I/O).

Rules:
- a scope is `("tenants", <tenant>)` followed, by the tenant's isolation, by the agent's
  and the user's labels; a missing agent or user is `NO_ID` ("_"), and `check_scope_id`
  refuses "_" as an id (and "*", a listing's wildcard, and anything that is not a
  namespace label), so no id names another id's partition nor the one of "no id";
- gets, puts and searches are rewritten to `scope + namespace`;
- a namespace listing gets the scope in front of its prefix condition (or as one when it
  had none), `max_depth` grows by the scope's length, and the scope is cut from every
  namespace listed; a suffix condition is unchanged;
- results carry the caller's namespaces (new `Item`s; values are the same objects).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from langgraph.store.base import (
    GetOp,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    SearchItem,
    SearchOp,
)

from langmem_prod.errors import InvalidInputError
from langmem_prod.store._namespace import match_path
from langmem_prod.store._text import has_surrogate

NO_ID = "_"
"""The scope label of a missing agent or user; refused as an agent or user id."""
_WILDCARD = "*"


def check_scope_id(name: str, value: object) -> str | None:
    """An agent or user id as a scope label, checked (None: missing, scoped as `NO_ID`).

    >>> check_scope_id("user_id", "ada")
    'ada'
    >>> check_scope_id("user_id", "_")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    langmem_prod.errors.InvalidInputError: user_id cannot be '_' (the label of a missing id) ...
    """
    if value is None:
        return None
    if (
        not isinstance(value, str)
        or not value
        or value in (NO_ID, _WILDCARD)
        or "." in value
        or "\x00" in value
        or has_surrogate(value)
    ):
        raise InvalidInputError(
            f"{name} cannot be {NO_ID!r} (the label of a missing id) or {_WILDCARD!r}; it must "
            "be a non-empty string without '.', NUL or lone surrogates"
        )
    return value


def scope_op(op: Op, scope: tuple[str, ...]) -> Op:
    """The op on the tenant's data."""
    if isinstance(op, GetOp):
        return op._replace(namespace=scope + tuple(op.namespace))
    if isinstance(op, PutOp):
        return op._replace(namespace=scope + tuple(op.namespace))
    if isinstance(op, SearchOp):
        return op._replace(namespace_prefix=scope + tuple(op.namespace_prefix))
    if isinstance(op, ListNamespacesOp):
        conditions = list(op.match_conditions or ())
        prefixed = [
            MatchCondition("prefix", scope + match_path(c.path)) if c.match_type == "prefix" else c
            for c in conditions
        ]
        if not any(c.match_type == "prefix" for c in conditions):
            prefixed.insert(0, MatchCondition("prefix", scope))
        depth = None if op.max_depth is None else op.max_depth + len(scope)
        return op._replace(match_conditions=tuple(prefixed), max_depth=depth)
    raise TypeError(f"unknown operation {type(op).__name__}")


def _item(item: Any, cut: int) -> Any:
    if isinstance(item, SearchItem):
        return SearchItem(
            item.namespace[cut:], item.key, item.value, item.created_at, item.updated_at, item.score
        )
    if isinstance(item, Item):
        return Item(
            namespace=item.namespace[cut:],
            key=item.key,
            value=item.value,
            created_at=item.created_at,
            updated_at=item.updated_at,
        )
    return item


def unscope_result(op: Op, result: Any, scope: tuple[str, ...]) -> Any:
    """The result as the caller sees it, without the tenant's prefix."""
    cut = len(scope)
    if isinstance(op, GetOp):
        return _item(result, cut)
    if isinstance(op, SearchOp):
        return [_item(item, cut) for item in result]
    if isinstance(op, ListNamespacesOp):
        return [tuple(ns[cut:]) for ns in result if tuple(ns[:cut]) == scope]
    return result


def scope_batch(ops: Iterable[Op], scope: tuple[str, ...]) -> list[Op]:
    """Every op of a batch, scoped."""
    return [scope_op(op, scope) for op in ops]


def unscope_batch(ops: Sequence[Op], results: Sequence[Any], scope: tuple[str, ...]) -> list[Any]:
    """Every result of a batch, unscoped."""
    return [unscope_result(op, r, scope) for op, r in zip(ops, results, strict=True)]

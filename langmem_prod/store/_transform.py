"""The plug point through which a store transforms item values at rest (e.g. encrypts them).

Rules:
- a `ValueTransform` turns the value a caller puts into the value the store keeps
  (`seal`) and back (`open`); it sees the item's namespace and key, so it can bind the
  stored form to its owner;
- what is embedded for semantic search is computed from the caller's value, before
  `seal`; filters run in the database on the stored form, so `check_search` refuses a
  filter the stored form cannot answer rather than letting it match nothing;
- `prepare` / `aprepare` run before a batch is planned and again before its results are
  opened, with the namespaces involved: the only place a transform may do I/O (load keys);
- the store never opens a value twice, and hands each result a fresh `Item`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

from langgraph.store.base import GetOp, Item, ListNamespacesOp, Op, PutOp, SearchOp

Namespace = tuple[str, ...]


@runtime_checkable
class ValueTransform(Protocol):
    """Transforms item values between the caller and the database.

    Example:
        >>> class Tagged:
        ...     def prepare(self, namespaces): pass
        ...     async def aprepare(self, namespaces): pass
        ...     def seal(self, namespace, key, value, text): return {"v": value}
        ...     def open(self, namespace, key, stored): return stored["v"]
        ...     def check_search(self, namespace_prefix, fields): pass
        >>> isinstance(Tagged(), ValueTransform)
        True
    """

    def prepare(self, namespaces: Iterable[Namespace]) -> None:
        """Load what sealing and opening values of these namespaces needs (may do I/O)."""
        ...

    async def aprepare(self, namespaces: Iterable[Namespace]) -> None:
        """Async `prepare`."""
        ...

    def seal(
        self, namespace: Namespace, key: str, value: dict[str, Any], text: str
    ) -> dict[str, Any]:
        """The value to store for the caller's `value`, whose checked JSON is `text`."""
        ...

    def open(self, namespace: Namespace, key: str, stored: dict[str, Any]) -> dict[str, Any]:
        """The caller's value of a stored one."""
        ...

    def check_search(self, namespace_prefix: Namespace, fields: set[str]) -> None:
        """Refuse a search filtering on top-level `fields` the stored form hides."""
        ...


def op_namespaces(ops: Sequence[Op]) -> list[Namespace]:
    """The namespaces (or namespace prefixes) a batch touches."""
    out: list[Namespace] = []
    for op in ops:
        if isinstance(op, GetOp | PutOp):
            out.append(tuple(op.namespace))
        elif isinstance(op, SearchOp):
            out.append(tuple(op.namespace_prefix))
        elif not isinstance(op, ListNamespacesOp):
            raise TypeError(f"unknown operation {type(op).__name__}")
    return out


def result_items(results: Sequence[Any]) -> list[Item]:
    """Every item in a batch's results (gets and searches)."""
    items: list[Item] = []
    for result in results:
        if isinstance(result, Item):
            items.append(result)
        elif isinstance(result, list):
            items.extend(r for r in result if isinstance(r, Item))
    return items


def open_items(transform: ValueTransform, items: Iterable[Item]) -> None:
    """Replace each item's stored value by the caller's value, in place."""
    for item in items:
        item.value = transform.open(item.namespace, item.key, item.value)

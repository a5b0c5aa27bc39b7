"""The plug point through which a store transforms item values at rest (e.g. encrypts them).

Rules:
- a `ValueTransform` turns the value a caller puts into the value the store keeps
  (`seal`) and back (`open`); it sees the item's namespace, key and write time (the
  `updated_at` the store gives the item), so it can bind the stored form to its owner
  and to that write: `open` gets the row's `updated_at` back;
- `check_put` runs on each put's value while the batch is validated, before any I/O,
  so a value the transform refuses fails the batch with nothing read or written;
- what is embedded for semantic search is computed from the caller's value, before
  `seal`, which is told the top-level fields that feed the vectors (`"$"`: the whole
  value) so it may refuse to let sealed content leak into them; filters run in the
  database on the stored form, so `check_search` refuses a filter the stored form
  cannot answer rather than letting it match nothing;
- `prepare` / `aprepare` run before a batch is planned and again before its results are
  opened, with the namespaces involved: the only place a transform may do I/O (load keys);
- the store never opens a value twice, and hands each result a fresh `Item`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from langgraph.store.base import GetOp, Item, ListNamespacesOp, Op, PutOp, SearchOp

Namespace = tuple[str, ...]


@runtime_checkable
class ValueTransform(Protocol):
    """Transforms item values between the caller and the database.

    Example:
        >>> class Tagged:
        ...     def check_put(self, namespace, key, value): pass
        ...     def prepare(self, namespaces): pass
        ...     async def aprepare(self, namespaces): pass
        ...     def seal(self, namespace, key, value, text, *, written_at, indexed):
        ...         return {"v": value}
        ...     def open(self, namespace, key, stored, *, written_at): return stored["v"]
        ...     def check_search(self, namespace_prefix, fields): pass
        >>> isinstance(Tagged(), ValueTransform)
        True
    """

    def check_put(self, namespace: Namespace, key: str, value: Mapping[str, Any]) -> None:
        """Refuse a caller's value the transform cannot keep (no I/O: runs first)."""
        ...

    def prepare(self, namespaces: Iterable[Namespace]) -> None:
        """Load what sealing and opening values of these namespaces needs (may do I/O)."""
        ...

    async def aprepare(self, namespaces: Iterable[Namespace]) -> None:
        """Async `prepare`."""
        ...

    def seal(
        self,
        namespace: Namespace,
        key: str,
        value: dict[str, Any],
        text: str,
        *,
        written_at: datetime,
        indexed: frozenset[str],
    ) -> dict[str, Any]:
        """The value to store for the caller's `value` (checked JSON `text`).

        `written_at` becomes the item's `updated_at`; `indexed` holds the top-level
        fields embedded for semantic search ("$" for the whole value).
        """
        ...

    def open(
        self, namespace: Namespace, key: str, stored: dict[str, Any], *, written_at: datetime
    ) -> dict[str, Any]:
        """The caller's value of a stored one, whose row says it was written at `written_at`."""
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


def check_puts(transform: ValueTransform, ops: Sequence[Op]) -> None:
    """Let the transform refuse a put's value before the batch does any I/O."""
    for op in ops:
        if isinstance(op, PutOp) and op.value is not None:
            transform.check_put(tuple(op.namespace), op.key, op.value)


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
        item.value = transform.open(
            item.namespace, item.key, item.value, written_at=item.updated_at
        )

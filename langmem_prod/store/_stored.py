"""Stored values as the database holds them, for maintenance jobs (e.g. key rotation).

Rules:
- these bypass the store's `ValueTransform`: a page shows each item's stored JSON, and
  a replacement writes stored JSON as given;
- a page lists the items under a namespace prefix (the prefix itself included), in an
  order that a cursor resumes; items written meanwhile may be seen twice or missed, so
  a job repeats until a whole pass finds nothing to do;
- a replacement changes an item's stored value only if it still equals the value read
  (compare and set), and touches nothing else: not its timestamps, TTL or vectors; a
  replacement that lost to a concurrent write is skipped, not retried;
- both are bounded (one page, one batch of replacements) so the store stays usable.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from langgraph.store.base import SearchOp

from langmem_prod.errors import InvalidInputError, InvalidNamespaceError
from langmem_prod.store._namespace import as_namespace, validate_op


class StoredValue(NamedTuple):
    """An item's stored JSON and write time, as the backend keeps them.

    The namespace is its encoded text; a value transform may have bound the stored form
    to `updated_at`.
    """

    prefix: str
    key: str
    value_json: str
    updated_at: datetime


class Replacement(NamedTuple):
    """Replace `old_json` by `new_json` as the stored value of an item, if unchanged."""

    prefix: str
    key: str
    old_json: str
    new_json: str


class StoredPage(NamedTuple):
    """One page of stored values, and the cursor of the next one (None: the last page)."""

    values: list[StoredValue]
    cursor: Any


def validate_prefix(namespace_prefix: tuple[str, ...]) -> tuple[str, ...]:
    """A non-empty namespace prefix of valid labels."""
    prefix = as_namespace(namespace_prefix)
    if not prefix:
        raise InvalidNamespaceError("give a non-empty namespace prefix, e.g. ('tenants', 'acme')")
    validate_op(SearchOp(prefix))  # the labels, as for any search
    return prefix


def check_limit(limit: int) -> int:
    """A page size: an int from 1 to 10,000."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
        raise InvalidInputError("limit must be an int from 1 to 10000")
    return limit

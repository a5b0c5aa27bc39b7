"""Effects that store generators yield to their driver, shared by every backend.

Rules:
- a generator never performs I/O; it yields an effect and receives the effect's result;
- `Embed` answers with one vector per text, in order;
- `RecordAccess` and `DrainAccess` reach the store's access buffer, which the driver
  guards with its own lock.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple


class Embed(NamedTuple):
    """Embed `texts` as documents, or as search queries when `query` is set."""

    texts: tuple[str, ...]
    query: bool


class RecordAccess(NamedTuple):
    """Buffer reads of (prefix, key, refresh_ttl) made at `at`; answered with None."""

    reads: list[tuple[str, str, bool]]
    at: datetime


class DrainAccess(NamedTuple):
    """Take everything from the access buffer; answered with a list of AccessRecord."""

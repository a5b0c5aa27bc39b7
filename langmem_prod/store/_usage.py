"""A tenant's usage report, the same from every backend (no I/O)."""

from __future__ import annotations

from typing import Any


def usage_report(
    items: int, size: int, max_items: int | None, max_bytes: int | None
) -> dict[str, Any]:
    """A tenant's usage and how much of each quota it takes, as the Postgres registry reports.

    >>> usage_report(3, 120, 4, None)["items_used"]
    0.75
    """
    return {
        "items": int(items),
        "bytes": int(size),
        "max_items": max_items,
        "max_bytes": max_bytes,
        "items_used": None if not max_items else round(int(items) / max_items, 4),
        "bytes_used": None if not max_bytes else round(int(size) / max_bytes, 4),
    }

"""Stored values in PostgreSQL: a keyset page under a prefix, compare-and-set replacements.

Rules:
- pages follow the primary key (prefix, key), so a cursor is the last (prefix, key) and
  each page is one index range scan;
- replacements are one UPDATE joined to the arrays of changes, each row updated only if
  its stored value is still the one read; the row count is the number replaced.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any

from langmem_prod.store._namespace import descendant_range
from langmem_prod.store._stored import Replacement, StoredPage, StoredValue
from langmem_prod.store.postgres._effects import Execute
from langmem_prod.store.postgres._gen import PgConfig
from langmem_prod.store.postgres._sql import Statement, render

_PAGE = (
    "SELECT prefix, key, value::text, updated_at FROM {s}.items "
    "WHERE (prefix = %(p)s OR (prefix >= %(low)s AND prefix < %(high)s)) "
    "AND (prefix, key) > (%(after_prefix)s, %(after_key)s) "
    "ORDER BY prefix, key LIMIT %(limit)s"
)
_REPLACE = (
    "WITH changed AS (UPDATE {s}.items AS i SET value = c.new "
    "FROM unnest(%(prefixes)s::text[], %(keys)s::text[], %(olds)s::jsonb[], "
    "%(news)s::jsonb[]) AS c(prefix, key, old, new) "
    "WHERE i.prefix = c.prefix AND i.key = c.key AND i.value = c.old "
    "RETURNING 1) SELECT count(*) FROM changed"
)


def page_gen(
    cfg: PgConfig, prefix: str, cursor: tuple[str, str] | None, limit: int
) -> Generator[Execute, Any, StoredPage]:
    """Up to `limit` stored values under `prefix` after `cursor`."""
    low, high = descendant_range(prefix)
    after_prefix, after_key = cursor or ("", "")
    params = {
        "p": prefix,
        "low": low,
        "high": high,
        "after_prefix": after_prefix,
        "after_key": after_key,
        "limit": limit,
    }
    (rows,) = yield Execute((Statement(render(_PAGE, cfg.sql.schema), params),))
    values = [StoredValue(p, k, v, at) for p, k, v, at in rows]
    return StoredPage(values, (values[-1].prefix, values[-1].key) if len(values) == limit else None)


def replace_gen(cfg: PgConfig, replacements: Sequence[Replacement]) -> Generator[Execute, Any, int]:
    """Apply compare-and-set replacements; returns how many items were replaced."""
    if not replacements:
        return 0
    params = {
        "prefixes": [r.prefix for r in replacements],
        "keys": [r.key for r in replacements],
        "olds": [r.old_json for r in replacements],
        "news": [r.new_json for r in replacements],
    }
    ((count,),) = (yield Execute((Statement(render(_REPLACE, cfg.sql.schema), params),)))[0]
    return int(count)

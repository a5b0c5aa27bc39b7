"""The Postgres driver's effect: statements to run in one round trip."""

from __future__ import annotations

from typing import NamedTuple

from langmem_prod.store.postgres._sql import Statement


class Execute(NamedTuple):
    """Run `statements` in order in one round trip (a pipeline when there are several).

    Answered with one list of row tuples per statement (empty for statements that
    return no rows).
    """

    statements: tuple[Statement, ...]
    tenant_settings: tuple[int, ...] = ()
    """Positions of the statements that only set `langmem.tenant` for row-level security;
    a runner whose role bypasses RLS may skip them (answering them with no rows)."""

"""A backend's flows, bound to its configuration: what the store surfaces drive.

Rules:
- each backend builds one `Flows` from its generators (`batch_gen`, `flush_gen`,
  `sweep_gen`, and `_stored`'s `page_gen` and `replace_gen`) and its config; the sync
  and async store surfaces only drive them;
- one background round sweeps when a sweep is due, else flushes buffered reads when a
  flush is due, and returns how long the worker may sleep.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from langgraph.store.base import Result

from langmem_prod.store._maintenance import MaintenanceSchedule
from langmem_prod.store._ops import BatchPlan
from langmem_prod.store._stored import Replacement, StoredPage


class Flows(NamedTuple):
    """A backend's generators, bound to one store's configuration."""

    batch: Callable[[BatchPlan, datetime], Generator[Any, Any, list[Result]]]
    flush: Callable[[], Generator[Any, Any, int]]
    sweep: Callable[[datetime], Generator[Any, Any, int]]
    page: Callable[[str, Any, int], Generator[Any, Any, StoredPage]]
    replace: Callable[[Sequence[Replacement]], Generator[Any, Any, int]]


def maintenance_round(
    flows: Flows,
    schedule: MaintenanceSchedule,
    monotonic: float,
    now: datetime,
    *,
    pending: int,
    full: bool,
) -> Generator[Any, Any, float]:
    """One background round: sweep or flush when due; returns seconds until the next."""
    schedule.note_reads(monotonic, pending=pending, full=full)
    if schedule.sweep_due(monotonic):
        yield from flows.sweep(now)
    elif schedule.flush_due(monotonic):
        yield from flows.flush()
    return schedule.delay(monotonic)

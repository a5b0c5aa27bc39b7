"""The synchronous store surface, shared by every backend: batch, flush, sweep, close.

Rules:
- `batch` plans the ops and drives the backend's batch flow on the runner;
- a daemon thread runs maintenance rounds (buffered reads, TTL sweeps); it holds no
  reference to the store, whose finalizer stops it;
- the async methods of a sync store run the sync ones in a worker thread;
- `close()` stops the thread and writes what was buffered; the connection stays open.
"""

from __future__ import annotations

import concurrent.futures
import functools
import logging
import time
import weakref
from collections.abc import Callable, Generator, Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol, Self, TypeVar

from langgraph.store.base import Op, Result

from langmem_prod._bridge import in_thread
from langmem_prod.errors import LangmemError
from langmem_prod.store._access import AccessBuffer
from langmem_prod.store._base import StoreBase
from langmem_prod.store._flows import Flows, maintenance_round
from langmem_prod.store._maintenance import MaintenanceSchedule
from langmem_prod.store._namespace import encode_namespace, validated
from langmem_prod.store._ops import check_timestamp
from langmem_prod.store._stored import Replacement, StoredPage, check_limit, validate_prefix
from langmem_prod.store._transform import check_puts, op_namespaces, open_items, result_items
from langmem_prod.store._worker import ThreadWorker

T = TypeVar("T")
logger = logging.getLogger("langmem_prod.store")


class SyncRunner(Protocol):
    """What the surface needs of a backend's sync runner."""

    buffer: AccessBuffer
    on_record: Callable[[], None]

    def stop_recording(self) -> None:
        """Drop buffered reads and record no more."""
        ...

    def run(self, gen: Generator[Any, Any, T]) -> T:
        """Drive `gen` to its end."""
        ...


def _round(
    runner: SyncRunner, flows: Flows, schedule: MaintenanceSchedule, clock: Callable[[], datetime]
) -> float:
    now, pending, full = check_timestamp(clock()), len(runner.buffer), runner.buffer.full
    return runner.run(
        maintenance_round(flows, schedule, time.monotonic(), now, pending=pending, full=full)
    )


class SyncStore(StoreBase):
    """Batch, maintenance and lifetime of a synchronous store."""

    _runner: SyncRunner
    _flows: Flows
    _worker: ThreadWorker
    _worker_name: str

    def _new_worker(self) -> None:
        round = functools.partial(_round, self._runner, self._flows, self._schedule, self._clock)
        self._worker = ThreadWorker(
            round,
            name=self._worker_name,
            retry_after=self._flush_interval,
            on_read_only=self._runner.stop_recording,
        )
        self._runner.on_record = self._worker.wake
        self._finalizer = weakref.finalize(self, self._worker.stop, 0)
        self._sweeper_stopped: concurrent.futures.Future[None] | None = None
        self._worker.start()

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run ops in one round trip: all reads, then all writes."""
        if self.values is None:
            return self._runner.run(self._flows.batch(self._plan(ops), self._now()))
        ops = validated(ops)
        check_puts(self.values, ops)
        self.values.prepare(op_namespaces(ops))
        now = self._now()
        results = self._runner.run(self._flows.batch(self._plan(ops, validate=False, now=now), now))
        items = result_items(results)
        self.values.prepare(item.namespace for item in items)
        open_items(self.values, items)
        return results

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Run `batch` in a worker thread."""
        return await in_thread(self.batch, list(ops))

    def stored_values(
        self, namespace_prefix: tuple[str, ...], *, cursor: Any = None, limit: int = 100
    ) -> StoredPage:
        """One page of the stored JSON of the items under a prefix (for maintenance jobs).

        The store's `values` transform is bypassed. Pass the page's `cursor` back for the
        next page; None means the last page was reached.
        """
        prefix = encode_namespace(validate_prefix(namespace_prefix))
        return self._runner.run(self._flows.page(prefix, cursor, check_limit(limit)))

    def replace_stored_values(self, replacements: Sequence[Replacement]) -> int:
        """Replace stored JSON that is unchanged since it was read; returns how many were."""
        return self._runner.run(self._flows.replace(list(replacements)))

    def flush(self) -> int:
        """Write buffered access statistics and TTL refreshes now; returns items touched."""
        return self._runner.run(self._flows.flush())

    def sweep_ttl(self) -> int:
        """Delete expired items now; returns how many were deleted."""
        return self._runner.run(self._flows.sweep(self._now()))

    def start_ttl_sweeper(
        self, sweep_interval_minutes: int | None = None
    ) -> concurrent.futures.Future[None]:
        """Sweep periodically (the default already); the future completes on stop."""
        seconds = self._sweep_seconds(sweep_interval_minutes)
        self._schedule.set_sweep_interval(seconds, time.monotonic())
        self._worker.wake()
        self._sweeper_stopped = self._sweeper_stopped or concurrent.futures.Future()
        return self._sweeper_stopped

    def stop_ttl_sweeper(self, timeout: float | None = None) -> bool:
        """Stop periodic sweeping; True once stopped."""
        self._schedule.set_sweep_interval(None, time.monotonic())
        if self._sweeper_stopped is not None:
            self._sweeper_stopped.set_result(None)
            self._sweeper_stopped = None
        return True

    def close(self) -> None:
        """Stop the background worker and write what it buffered (the connection stays open)."""
        if self._closed:
            return
        self._closed = True
        self._finalizer.detach()
        self._worker.stop()
        self.stop_ttl_sweeper()
        try:
            self.flush()
        except LangmemError:
            logger.warning("could not write buffered access statistics at close", exc_info=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

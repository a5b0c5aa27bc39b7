"""The asyncio store surface, shared by every backend: batch, coalesced reads, close.

Rules:
- `abatch` plans the ops and drives the backend's batch flow on the runner;
- reads awaited together (`aget`, `asearch`, `alist_namespaces`) join one batch; each is
  validated alone first, so one caller's bad input fails only that caller;
- an asyncio task runs maintenance rounds on the loop the store is first used on;
- the sync methods of an async store run on that loop from another thread, and refuse
  to run on the loop's own thread;
- `aclose()` stops the task and writes what was buffered; the connection stays open.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Generator, Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol, Self, TypeVar

from langgraph.store.base import Op, Result, SearchOp

from langmem_prod._bridge import on_loop
from langmem_prod.errors import LangmemError
from langmem_prod.store._access import AccessBuffer
from langmem_prod.store._base import StoreBase
from langmem_prod.store._coalesce import ReadCoalescer
from langmem_prod.store._filter import parse_filter
from langmem_prod.store._flows import Flows, maintenance_round
from langmem_prod.store._maintenance import MaintenanceSchedule
from langmem_prod.store._namespace import encode_namespace, validate_op, validated
from langmem_prod.store._ops import check_timestamp
from langmem_prod.store._stored import Replacement, StoredPage, check_limit, validate_prefix
from langmem_prod.store._transform import check_puts, op_namespaces, open_items, result_items
from langmem_prod.store._worker import TaskWorker

T = TypeVar("T")
logger = logging.getLogger("langmem_prod.store")


class AsyncRunner(Protocol):
    """What the surface needs of a backend's async runner."""

    buffer: AccessBuffer
    on_record: Callable[[], None]

    def stop_recording(self) -> None:
        """Drop buffered reads and record no more."""
        ...

    async def run(self, gen: Generator[Any, Any, T]) -> T:
        """Drive `gen` to its end."""
        ...


async def _round(
    runner: AsyncRunner, flows: Flows, schedule: MaintenanceSchedule, clock: Callable[[], datetime]
) -> float:
    now, pending, full = check_timestamp(clock()), len(runner.buffer), runner.buffer.full
    return await runner.run(
        maintenance_round(flows, schedule, time.monotonic(), now, pending=pending, full=full)
    )


class AsyncStore(StoreBase):
    """Batch, coalesced reads, maintenance and lifetime of an asyncio store."""

    _runner: AsyncRunner
    _flows: Flows
    _worker: TaskWorker
    _worker_name: str

    def _new_worker(self) -> None:
        self._coalescer = ReadCoalescer(self._abatch_validated)
        self._loop: asyncio.AbstractEventLoop | None = None
        round = functools.partial(_round, self._runner, self._flows, self._schedule, self._clock)
        self._worker = TaskWorker(
            round,
            name=self._worker_name,
            retry_after=self._flush_interval,
            on_read_only=self._runner.stop_recording,
        )
        self._runner.on_record = self._worker.wake
        self._finalizer = weakref.finalize(self, self._worker.cancel)
        with contextlib.suppress(RuntimeError):  # built outside a loop: bind on first use
            self._bind_loop()

    def _bind_loop(self) -> None:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._worker.start()

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Run ops in one round trip: all reads, then all writes."""
        self._bind_loop()
        if self.values is None:
            return await self._runner.run(self._flows.batch(self._plan(ops), self._now()))
        return await self._abatch_validated(validated(ops))

    async def _abatch_validated(self, ops: list[Op]) -> list[Result]:
        if self.values is not None:
            check_puts(self.values, ops)
            await self.values.aprepare(op_namespaces(ops))
        now = self._now()
        plan = self._plan(ops, validate=False, now=now)
        results = await self._runner.run(self._flows.batch(plan, now))
        if self.values is not None:
            items = result_items(results)
            await self.values.aprepare(item.namespace for item in items)
            open_items(self.values, items)
        return results

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run `abatch` on the store's loop from another thread."""
        return on_loop(self._loop, self.abatch(list(ops)), "batch")

    def _aread(self, op: Op) -> Awaitable[Result]:
        """Validate `op` alone (a bad op fails only its caller), then join the next batch."""
        if self._loop is None:
            self._bind_loop()
        validate_op(op)
        if isinstance(op, SearchOp):
            parse_filter(op.filter)
        return self._coalescer.submit(op)

    async def stored_values(
        self, namespace_prefix: tuple[str, ...], *, cursor: Any = None, limit: int = 100
    ) -> StoredPage:
        """One page of the stored JSON of the items under a prefix (for maintenance jobs).

        The store's `values` transform is bypassed. Pass the page's `cursor` back for the
        next page; None means the last page was reached.
        """
        prefix = encode_namespace(validate_prefix(namespace_prefix))
        return await self._runner.run(self._flows.page(prefix, cursor, check_limit(limit)))

    async def replace_stored_values(self, replacements: Sequence[Replacement]) -> int:
        """Replace stored JSON that is unchanged since it was read; returns how many were."""
        return await self._runner.run(self._flows.replace(list(replacements)))

    async def aflush(self) -> int:
        """Write buffered access statistics and TTL refreshes now; returns items touched."""
        return await self._runner.run(self._flows.flush())

    async def sweep_ttl(self) -> int:
        """Delete expired items now; returns how many were deleted."""
        return await self._runner.run(self._flows.sweep(self._now()))

    async def start_ttl_sweeper(self, sweep_interval_minutes: int | None = None) -> None:
        """Sweep periodically (the default already)."""
        self._bind_loop()
        seconds = self._sweep_seconds(sweep_interval_minutes)
        self._schedule.set_sweep_interval(seconds, time.monotonic())
        self._worker.wake()

    async def stop_ttl_sweeper(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        """Stop periodic sweeping; True once stopped."""
        self._schedule.set_sweep_interval(None, time.monotonic())
        return True

    async def aclose(self) -> None:
        """Stop the background task and write what it buffered (the connection stays open)."""
        if self._closed:
            return
        self._closed = True
        self._finalizer.detach()
        await self._worker.stop()
        try:
            await self.aflush()
        except LangmemError:
            logger.warning("could not write buffered access statistics at close", exc_info=True)

    async def __aenter__(self) -> Self:
        self._bind_loop()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

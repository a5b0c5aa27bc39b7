"""Coalesce concurrent async reads into one batch (one round trip).

Rules:
- every read (get, search, namespace listing) made in the same event-loop iteration, e.g.
  by `asyncio.gather`, joins one batch, which runs in the next iteration: its gets share
  one query and the rest ride in the same pipeline;
- ops are validated before they join, so one caller's bad input fails only that caller;
- each caller receives its own result, or the batch's exception;
- a cancelled caller does not cancel the batch for the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from langgraph.store.base import Op, Result


class ReadCoalescer:
    """Collects read ops and runs them together through `run_batch`."""

    def __init__(self, run_batch: Callable[[list[Op]], Awaitable[list[Result]]]) -> None:
        self._run_batch = run_batch
        self._pending: list[tuple[Op, asyncio.Future[Any]]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, op: Op) -> asyncio.Future[Any]:
        """Queue a validated read op; the returned future resolves to its result.

        A plain function, not a coroutine: callers await the future through one frame
        less, which matters when hundreds of reads are gathered.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.append((op, future))
        return future

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        task = asyncio.get_running_loop().create_task(self._run(pending))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, pending: list[tuple[Op, asyncio.Future[Any]]]) -> None:
        try:
            results = await self._run_batch([op for op, _ in pending])
        except BaseException as exc:
            for _, future in pending:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            for (_, future), result in zip(pending, results, strict=True):
                if not future.done():
                    future.set_result(result)

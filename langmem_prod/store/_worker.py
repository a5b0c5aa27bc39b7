"""Background workers that run a store's maintenance round, as a thread or as a task.

Rules:
- a round returns how many seconds to sleep; `wake()` cuts the sleep short;
- a failing round is logged and retried after `retry_after` seconds, except on a
  read-only server (`ReadOnlyServerError`): then the worker logs one warning, calls its
  `on_read_only` hook (the store stops recording reads) and stops, since no later round
  could write either;
- workers hold no reference to their store, so an unreferenced store can be collected
  (its finalizer stops the worker).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable

from langmem_prod.errors import ReadOnlyServerError

logger = logging.getLogger("langmem_prod.store")


def _read_only(name: str, exc: ReadOnlyServerError, hook: Callable[[], None] | None) -> None:
    logger.warning(
        "%s stopped: the server is read-only, so this store's background maintenance "
        "(access statistics, TTL refreshes, sweeps of expired items) is off until it is "
        "made again on a writable server; reads go on (%s)",
        name,
        exc,
    )
    if hook is not None:
        hook()


class ThreadWorker:
    """Runs `round()` in a daemon thread until stopped."""

    def __init__(
        self,
        round: Callable[[], float],
        *,
        name: str,
        retry_after: float,
        on_read_only: Callable[[], None] | None = None,
    ) -> None:
        self._round = round
        self._retry_after = retry_after
        self._on_read_only = on_read_only
        self._wake = threading.Event()
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> None:
        """Start the thread (once)."""
        if not self._thread.is_alive() and not self._stopped:
            self._thread.start()

    def wake(self) -> None:
        """Run the next round now."""
        self._wake.set()

    def stop(self, timeout: float | None = 10.0) -> bool:
        """Stop after the current round; True when the thread has ended."""
        self._stopped = True
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stopped:
            try:
                delay = self._round()
            except ReadOnlyServerError as exc:
                _read_only(self._thread.name, exc, self._on_read_only)
                return
            except Exception:
                logger.warning("store maintenance round failed; retrying", exc_info=True)
                delay = self._retry_after
            self._wake.wait(delay)
            self._wake.clear()


class TaskWorker:
    """Runs `await round()` in an asyncio task on the loop that starts it."""

    def __init__(
        self,
        round: Callable[[], Awaitable[float]],
        *,
        name: str,
        retry_after: float,
        on_read_only: Callable[[], None] | None = None,
    ) -> None:
        self._round = round
        self._retry_after = retry_after
        self._on_read_only = on_read_only
        self._name = name
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopped = False

    def start(self) -> None:
        """Start the task on the running loop (once)."""
        if self._task is None and not self._stopped:
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._loop(), name=self._name)

    def wake(self) -> None:
        """Run the next round now (call from the task's loop)."""
        if self._wake is not None:
            self._wake.set()

    async def stop(self) -> None:
        """Stop and wait for the task to end."""
        self._stopped = True
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def cancel(self) -> None:
        """Stop without waiting (for finalizers); safe from any thread."""
        self._stopped = True
        task = self._task
        if task is not None and not task.done():
            with contextlib.suppress(RuntimeError):  # a closed loop took the task with it
                task.get_loop().call_soon_threadsafe(task.cancel)

    async def _loop(self) -> None:
        assert self._wake is not None
        while not self._stopped:
            try:
                delay = await self._round()
            except ReadOnlyServerError as exc:
                _read_only(self._name, exc, self._on_read_only)
                return
            except Exception:
                logger.warning("store maintenance round failed; retrying", exc_info=True)
                delay = self._retry_after
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            self._wake.clear()

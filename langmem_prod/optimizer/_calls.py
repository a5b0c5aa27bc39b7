"""Model calls under a deadline: a growing thread pool for sync calls, cancellation for async.

Rules:
- a call has a deadline (its optimization's); a call not started by then never starts:
  it is skipped before the model is entered ("deadline"), whether the time went to an
  earlier call or to waiting for a thread;
- sync calls run on `Workers`: an idle thread if there is one, else a new thread, up to
  `max_threads` running calls; past that, calls wait in order, and the wait counts
  against their deadline. The caller's context variables (LangChain callbacks, tracing)
  go along;
- a call still running at its deadline is abandoned ("timeout"): the caller falls back
  at once and the answer, if one ever comes, is dropped. Python cannot stop a thread, so
  a hung model keeps it; that thread stops counting against `max_threads` (hung calls
  never starve the others) and rejoins the pool if the call ever returns. Once a model
  has `max_stuck` abandoned calls still running, further calls to it are not started
  ("saturated") until one returns (calls already running then may add to them, so a
  model holds at most `max_stuck - 1 + max_threads` threads, and in practice
  `max_stuck` plus the calls made to it at once). A model's first abandoned call and
  reaching the cap log one warning each; its last abandoned call returning, one info line;
- threads are daemons (a hung model never holds up the interpreter's exit); an idle one
  ends after `idle_seconds`; a forked child starts with an empty pool;
- async: a model with an async implementation of its own is awaited under
  `asyncio.timeout`, so the cancellation reaches its call; one without (LangChain would
  run it on the event loop's default executor, which hung calls would fill up for the
  whole program) runs on `Workers` like a sync call;
- no deadline (None): the model is called directly, in the caller's thread or task.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future
from typing import Any

from langchain_core.language_models import BaseChatModel, SimpleChatModel
from langchain_core.messages import BaseMessage
from langchain_core.runnables import Runnable

from langmem_prod.optimizer._flow import Failed

logger = logging.getLogger("langmem_prod.optimizer")

MAX_THREADS = 64
MAX_STUCK = 4
IDLE_SECONDS = 30.0


class _Call:
    """One sync model call: what to run, for which model, until when, and its outcome."""

    __slots__ = ("abandoned", "context", "deadline", "finished", "fn", "future", "key", "name")

    def __init__(self, fn: Callable[[], Any], key: int, name: str, deadline: float) -> None:
        self.fn = fn
        self.key = key
        self.name = name
        self.deadline = deadline
        self.context = contextvars.copy_context()
        self.future: Future[Any] = Future()
        self.abandoned = False
        self.finished = False


class Workers:
    """Threads for sync model calls; see the module's rules.

    Example:
        >>> import time
        >>> workers = Workers(max_threads=2)
        >>> call = workers.submit(lambda: "hi", key=1, name="m", deadline=time.monotonic() + 5)
        >>> call.future.result(5)
        'hi'
    """

    def __init__(
        self,
        *,
        max_threads: int = MAX_THREADS,
        max_stuck: int = MAX_STUCK,
        idle_seconds: float = IDLE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_threads = max_threads
        self.max_stuck = max_stuck
        self.idle_seconds = idle_seconds
        self.clock = clock
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[queue.SimpleQueue[_Call]] = []  # the inboxes of idle threads
        self._backlog: deque[_Call] = deque()
        self._threads = 0  # threads idle or running a call not abandoned
        self._stuck: dict[int, int] = {}  # model key -> abandoned calls still running

    def stuck(self, key: int | None = None) -> int:
        """How many abandoned calls to the model `key` (to any model: None) still run."""
        with self._lock:
            return self._stuck.get(key, 0) if key is not None else sum(self._stuck.values())

    def threads(self) -> int:
        """How many threads are idle or run a call not abandoned (at most `max_threads`)."""
        with self._lock:
            return self._threads

    def submit(
        self, fn: Callable[[], Any], *, key: int, name: str, deadline: float
    ) -> _Call | None:
        """Run `fn` on a thread before `deadline`; None if the model `key` is saturated."""
        call = _Call(fn, key, name, deadline)
        with self._lock:
            if self._stuck.get(key, 0) >= self.max_stuck:
                return None
            if self._idle:
                self._idle.pop().put(call)
                return call
            self._backlog.append(call)
            grow = self._grow()
        if grow:
            self._start()
        return call

    def abandon(self, call: _Call) -> Any:
        """Give up waiting for `call`: its outcome if it just ended, else `Failed`.

        The thread of an abandoned call no longer counts against `max_threads`.
        """
        if call.future.cancel():
            return Failed("deadline")
        with self._lock:
            if call.finished:
                return outcome(call.future)
            call.abandoned = True
            self._threads -= 1
            stuck = self._stuck[call.key] = self._stuck.get(call.key, 0) + 1
            grow = bool(self._backlog) and self._grow()
        if grow:
            self._start()
        if stuck == 1:
            logger.warning(
                "a call to %s ran past its deadline and was abandoned; its thread stays busy "
                "until the model returns (at most %d such calls per model, then calls to it "
                "are not started)",
                call.name,
                self.max_stuck,
            )
        elif stuck == self.max_stuck:
            logger.warning(
                "%d abandoned calls to %s still run: further calls to it are not started "
                "(the offline fallback is used) until one returns",
                stuck,
                call.name,
            )
        return Failed("timeout")

    def _grow(self) -> bool:
        """Count one more thread if there is room (the lock is held)."""
        if self._threads >= self.max_threads:
            return False
        self._threads += 1
        return True

    def _start(self) -> None:
        try:
            threading.Thread(target=self._work, name="langmem-llm", daemon=True).start()
        except RuntimeError:  # the system refuses a thread: the backlog waits for ours
            with self._lock:
                self._threads -= 1

    def _work(self) -> None:
        inbox: queue.SimpleQueue[_Call] = queue.SimpleQueue()
        while (call := self._next(inbox)) is not None:
            if not self._run(call):
                return

    def _next(self, inbox: queue.SimpleQueue[_Call]) -> _Call | None:
        with self._lock:
            if self._backlog:
                return self._backlog.popleft()
            self._idle.append(inbox)
        try:
            return inbox.get(timeout=self.idle_seconds)
        except queue.Empty:
            with self._lock:
                if inbox in self._idle:
                    self._idle.remove(inbox)
                    self._threads -= 1
                    return None
            return inbox.get()  # a call was handed over as the wait ended

    def _run(self, call: _Call) -> bool:
        """Run `call` unless its deadline passed; whether this thread stays in the pool."""
        future = call.future
        if self.clock() >= call.deadline:
            future.cancel()  # not started by its deadline: never starts
        if not future.set_running_or_notify_cancel():
            return True
        try:
            result = call.context.run(call.fn)
        except BaseException as exc:  # handed to the caller, like concurrent.futures does
            future.set_exception(exc)
        else:
            future.set_result(result)
        return self._finished(call)

    def _finished(self, call: _Call) -> bool:
        with self._lock:
            call.finished = True
            if not call.abandoned:
                return True
            left = self._stuck[call.key] - 1
            if left:
                self._stuck[call.key] = left
            else:
                del self._stuck[call.key]
            rejoin = self._grow()
        if not left:
            logger.info("every abandoned call to %s has returned", call.name)
        return rejoin


WORKERS = Workers()
os.register_at_fork(after_in_child=WORKERS._reset)


def outcome(future: Future[Any] | asyncio.Future[Any]) -> Any:
    """The result of a finished call, or `Failed` when it raised or was never started."""
    if future.cancelled():
        return Failed("deadline")
    error = future.exception()
    return future.result() if error is None else Failed("error", error)


def has_own_async(model: Any) -> bool:
    """Whether `model.ainvoke` is truly async (not the sync call on the loop's executor)."""
    if not isinstance(model, BaseChatModel):
        return True
    return type(model)._agenerate not in (BaseChatModel._agenerate, SimpleChatModel._agenerate)


class ModelCaller:
    """Calls to one chat model under deadlines (monotonic seconds; None: no deadline)."""

    def __init__(self, model: Any, workers: Workers = WORKERS) -> None:
        self.key = id(model)
        self.name = type(model).__name__
        self.own_async = has_own_async(model)
        self.workers = workers

    def call(
        self, runnable: Runnable[Any, Any], prompt: Sequence[BaseMessage], deadline: float | None
    ) -> Any:
        """`runnable.invoke(prompt)` on a worker thread: its reply, or `Failed`."""
        if deadline is None:
            return _direct(runnable, prompt)
        remaining = deadline - self.workers.clock()
        if remaining <= 0:
            return Failed("deadline")
        fn = functools.partial(runnable.invoke, prompt)
        call = self.workers.submit(fn, key=self.key, name=self.name, deadline=deadline)
        if call is None:
            return Failed("saturated")
        try:
            call.future.exception(remaining)
        except TimeoutError:
            return self.workers.abandon(call)
        except CancelledError:  # not started by its deadline
            return Failed("deadline")
        except BaseException:  # the caller is interrupted: the call goes on, unwaited
            self.workers.abandon(call)
            raise
        return outcome(call.future)

    async def acall(
        self, runnable: Runnable[Any, Any], prompt: Sequence[BaseMessage], deadline: float | None
    ) -> Any:
        """`runnable.ainvoke(prompt)`, cancelled at `deadline`: its reply, or `Failed`."""
        if deadline is None:
            return await _adirect(runnable, prompt)
        remaining = deadline - self.workers.clock()
        if remaining <= 0:
            return Failed("deadline")
        if self.own_async:
            scope = asyncio.timeout(remaining)
            try:
                async with scope:
                    return await runnable.ainvoke(prompt)
            except TimeoutError as exc:
                return Failed("timeout") if scope.expired() else Failed("error", exc)
            except Exception as exc:  # any model failure falls back offline
                return Failed("error", exc)
        return await self._athreaded(runnable, prompt, deadline, remaining)

    async def _athreaded(
        self,
        runnable: Runnable[Any, Any],
        prompt: Sequence[BaseMessage],
        deadline: float,
        remaining: float,
    ) -> Any:
        fn = functools.partial(runnable.invoke, prompt)
        call = self.workers.submit(fn, key=self.key, name=self.name, deadline=deadline)
        if call is None:
            return Failed("saturated")
        waiter = asyncio.wrap_future(call.future)
        try:
            done, _ = await asyncio.wait({waiter}, timeout=remaining)
        except BaseException:  # the task is cancelled: the call goes on, unwaited
            self.workers.abandon(call)
            waiter.cancel()
            raise
        if done:
            return outcome(waiter)
        result = self.workers.abandon(call)
        waiter.cancel()
        return result


def _direct(runnable: Runnable[Any, Any], prompt: Sequence[BaseMessage]) -> Any:
    try:
        return runnable.invoke(prompt)
    except Exception as exc:  # any model failure falls back offline
        return Failed("error", exc)


async def _adirect(runnable: Runnable[Any, Any], prompt: Sequence[BaseMessage]) -> Any:
    try:
        return await runnable.ainvoke(prompt)
    except Exception as exc:  # any model failure falls back offline
        return Failed("error", exc)

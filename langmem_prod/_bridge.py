"""The two bridges between sync and async code, one per direction.

Rules:
- a sync store's async methods run the sync method in a worker thread;
- an async store's sync methods run the coroutine on the store's own loop from another
  thread, and refuse to run on that loop's thread, where they would deadlock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from langmem_prod.errors import SyncCallInEventLoopError

T = TypeVar("T")


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """Await `fn(*args)` run in the default thread pool."""
    return await asyncio.to_thread(fn, *args)


def on_loop(loop: asyncio.AbstractEventLoop | None, coro: Coroutine[Any, Any, T], name: str) -> T:
    """Run `coro` on `loop` from a thread other than the loop's and wait for it."""
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if loop is None or loop.is_closed() or running is loop:
        coro.close()
        if loop is None or loop.is_closed():
            raise SyncCallInEventLoopError(
                f"{name}() of an async store needs the store's event loop, which is not "
                "running; use the awaitable a-method from async code instead"
            )
        raise SyncCallInEventLoopError(
            f"synchronous {name}() called from the async store's own event loop would "
            f"deadlock; use `await store.a{name}(...)` instead"
        )
    return asyncio.run_coroutine_threadsafe(coro, loop).result()

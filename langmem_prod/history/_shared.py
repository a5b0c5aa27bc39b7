"""Connections shared by every history built on the same URL.

Rules:
- a history is made per conversation (often per request), so a URL must not mean a
  connection per history: histories on one URL share one sync pool / client per process
  and one async pool / client per event loop;
- async pools and clients belong to their loop: they are made on first use inside it
  and closed with it: a watcher task, cancelled when `asyncio.run` (or any runner that
  cancels its remaining tasks) ends the loop, closes them then, so no server connection
  outlives its loop and the loop's end never waits on a pool's orphaned workers;
- `close_shared_connections()` / `aclose_shared_connections()` close what was made
  (sync pools and clients are also closed at interpreter exit).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import threading
import weakref
from typing import Any

import redis
import redis.asyncio
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from langmem_prod.store.postgres._connect import (
    DEFAULT_CONNECT_TIMEOUT,
    acheck_connection,
    check_connection,
)
from langmem_prod.store.redis._connect import async_client, sync_client
from langmem_prod.store.redis._driver import close_client

_lock = threading.Lock()
_sync: dict[tuple[str, str], Any] = {}
_async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopConnections] = (
    weakref.WeakKeyDictionary()
)
POOL_MAX_SIZE = 10
_log = logging.getLogger(__name__)


class _LoopConnections:
    """One loop's pools and clients, and the task that closes them when the loop ends."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.made: dict[tuple[str, str], Any] = {}
        self.watcher = loop.create_task(self._close_with_loop(), name="langmem-history-closer")

    async def _close_with_loop(self) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            # The loop is ending (its runner cancels what is left): close while it runs.
            loop = asyncio.get_running_loop()
            if _async.get(loop) is self:
                del _async[loop]
            await _close_all(list(self.made.values()))


def _owned() -> dict[tuple[str, str], Any]:
    loop = asyncio.get_running_loop()
    connections = _async.get(loop)
    if connections is None:
        connections = _async[loop] = _LoopConnections(loop)
    return connections.made


async def _close_all(made: list[Any]) -> None:
    for item in made:
        try:
            await (_close_pool(item) if isinstance(item, AsyncConnectionPool) else item.aclose())
        except Exception:  # one failure must not keep the others open
            _log.warning("closing a history connection failed", exc_info=True)


async def _close_pool(pool: AsyncConnectionPool[Any]) -> None:
    """Close a pool whose worker tasks may be cancelled with its loop, connections included.

    `close()` waits for the workers and, when the loop's end cancelled them, stops there
    with `CancelledError` before closing the idle connections: take those out first and
    hand them back after, when the closed pool closes each one returned to it.
    """
    idle = [await pool.getconn(timeout=1.0) for _ in range(pool.get_stats()["pool_available"])]
    with contextlib.suppress(asyncio.CancelledError):
        await pool.close(timeout=1.0)
    for conn in idle:
        await pool.putconn(conn)


def pg_pool(url: str) -> ConnectionPool[Any]:
    """The process's sync pool on `url` (opened on first use)."""
    with _lock:
        pool = _sync.get(("pg", url))
        if pool is None:
            conninfo = check_connection(url, DEFAULT_CONNECT_TIMEOUT)
            pool = ConnectionPool(
                conninfo,
                min_size=1,
                max_size=POOL_MAX_SIZE,
                kwargs={"autocommit": True},
                open=False,
            )
            pool.open()
            _sync[("pg", url)] = pool
    return pool


async def apg_pool(url: str) -> AsyncConnectionPool[Any]:
    """The running loop's async pool on `url` (opened on first use)."""
    owned = _owned()
    pool = owned.get(("pg", url))
    if pool is None:
        conninfo = await acheck_connection(url, DEFAULT_CONNECT_TIMEOUT)
        # min_size=0: the first use makes the loop's one connection; with a connection
        # made in the background at open it would find none ready and grow to two.
        pool = AsyncConnectionPool(
            conninfo,
            min_size=0,
            max_size=POOL_MAX_SIZE,
            kwargs={"autocommit": True},
            open=False,
        )
        owned[("pg", url)] = pool
        await pool.open()
    return pool


def redis_client(url: str, cluster: bool) -> redis.Redis | redis.RedisCluster:
    """The process's sync Redis client on `url`."""
    kind = "redis-cluster" if cluster else "redis"
    with _lock:
        client = _sync.get((kind, url))
        if client is None:
            client = sync_client(
                url, cluster=cluster, pool_size=None, connect_timeout=DEFAULT_CONNECT_TIMEOUT
            )
            _sync[(kind, url)] = client
    return client


def aredis_client(url: str, cluster: bool) -> redis.asyncio.Redis | redis.asyncio.RedisCluster:
    """The running loop's async Redis client on `url`."""
    kind = "redis-cluster" if cluster else "redis"
    owned = _owned()
    client = owned.get((kind, url))
    if client is None:
        client = async_client(
            url, cluster=cluster, pool_size=None, connect_timeout=DEFAULT_CONNECT_TIMEOUT
        )
        owned[(kind, url)] = client
    return client


@atexit.register
def close_shared_connections() -> None:
    """Close the sync pools and clients that histories made from URLs."""
    with _lock:
        made = list(_sync.values())
        _sync.clear()
    for item in made:
        if isinstance(item, ConnectionPool):
            item.close()
        else:
            close_client(item)


async def aclose_shared_connections() -> None:
    """Close the running loop's async pools and clients that histories made from URLs."""
    connections = _async.pop(asyncio.get_running_loop(), None)
    if connections is not None:
        connections.watcher.cancel()  # popped first: the watcher closes nothing
        await _close_all(list(connections.made.values()))

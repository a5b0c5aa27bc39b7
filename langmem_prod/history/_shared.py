"""Connections shared by every history built on the same URL.

Rules:
- a history is made per conversation (often per request), so a URL must not mean a
  connection per history: histories on one URL share one sync pool / client per process
  and one async pool / client per event loop;
- async pools and clients belong to their loop: they are made on first use inside it;
- `close_shared_connections()` / `aclose_shared_connections()` close what was made
  (sync pools and clients are also closed at interpreter exit).
"""

from __future__ import annotations

import asyncio
import atexit
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
_async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str], Any]] = (
    weakref.WeakKeyDictionary()
)
POOL_MAX_SIZE = 10


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
    owned = _async.setdefault(asyncio.get_running_loop(), {})
    pool = owned.get(("pg", url))
    if pool is None:
        conninfo = await acheck_connection(url, DEFAULT_CONNECT_TIMEOUT)
        pool = AsyncConnectionPool(
            conninfo,
            min_size=1,
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
    owned = _async.setdefault(asyncio.get_running_loop(), {})
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
    owned = _async.pop(asyncio.get_running_loop(), {})
    for item in owned.values():
        await (item.close() if isinstance(item, AsyncConnectionPool) else item.aclose())

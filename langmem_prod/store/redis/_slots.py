"""Queue Redis calls for a client's connections instead of failing when its pool is full.

redis-py's pools do not wait: past `max_connections` a call fails at once with
`MaxConnectionsError` (100 connections by default, sync and asyncio, per node of a
cluster). So the runners take a slot before each round trip and give it back after.

Rules:
- one set of slots per client (shared by every store and history on it), as many as
  the client's pool holds connections (per node for a cluster: one node may get them all);
- a caller waits for a slot at most `pool_timeout` seconds, then gets
  `BackendTimeoutError` (retryable: the same call may succeed once the load passes);
- a pool that is full anyway (its connections taken by code outside the store) is waited
  for the same way, by trying again shortly until the same deadline;
- async slots belong to an event loop: a client used from another loop gets new ones.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from typing import Any

from langmem_prod.errors import BackendTimeoutError, ConfigurationError

DEFAULT_POOL_TIMEOUT = 30.0
_REDIS_DEFAULT_MAX = 100  # redis-py 8's pools and cluster nodes
_MAX_SLOTS = 1 << 16
FULL_POOL_PAUSE = 0.005  # seconds between tries on a pool that is full anyway

_lock = threading.Lock()
_sync: weakref.WeakKeyDictionary[Any, threading.BoundedSemaphore] = weakref.WeakKeyDictionary()
_async: weakref.WeakKeyDictionary[Any, tuple[asyncio.AbstractEventLoop, asyncio.Semaphore]] = (
    weakref.WeakKeyDictionary()
)


def pool_limit(client: Any) -> int:
    """How many connections `client` may open at once (to one node, for a cluster)."""
    pool = getattr(client, "connection_pool", None)
    limit = getattr(pool, "max_connections", None)
    if limit is None:  # a cluster: the per-node limit
        kwargs = getattr(client, "connection_kwargs", None)
        if kwargs is None:
            kwargs = getattr(getattr(client, "nodes_manager", None), "connection_kwargs", {})
        limit = kwargs.get("max_connections")
    return max(1, min(int(limit or _REDIS_DEFAULT_MAX), _MAX_SLOTS))


def sync_slots(client: Any) -> threading.BoundedSemaphore:
    """The slots of a sync client."""
    with _lock:
        slots = _sync.get(client)
        if slots is None:
            slots = _sync[client] = threading.BoundedSemaphore(pool_limit(client))
    return slots


def async_slots(client: Any) -> asyncio.Semaphore:
    """The slots of an asyncio client, in the running loop."""
    loop = asyncio.get_running_loop()
    entry = _async.get(client)
    if entry is None or entry[0] is not loop:
        entry = _async[client] = (loop, asyncio.Semaphore(pool_limit(client)))
    return entry[1]


def pool_timeout_error(timeout: float) -> BackendTimeoutError:
    """The error when no connection of the client's pool came free within `timeout`."""
    return BackendTimeoutError(
        f"no Redis connection came free within pool_timeout ({timeout:g} s): every "
        "connection of the client's pool stayed busy; raise pool_size (or the client's "
        "max_connections) or pool_timeout, or find what holds the connections"
    )


def check_pool_timeout(timeout: float) -> float:
    """`timeout` as a float, refused unless positive and finite.

    >>> check_pool_timeout(2)
    2.0
    """
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout < 1e9:
        raise ConfigurationError("pool_timeout must be a positive number of seconds")
    return float(timeout)

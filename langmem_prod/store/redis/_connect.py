"""Make redis-py clients from URLs so that mistakes fail at once and say why.

Rules:
- a URL redis-py cannot read is a `ConfigurationError`, before any connection;
- every client made here gives up connecting after `connect_timeout` seconds (redis-py
  would wait for the operating system's timeout), and opens at most `pool_size`
  connections (per node of a cluster; redis-py's default is 100); callers beyond it
  queue in the runner (`_slots`) for up to the store's `pool_timeout`;
- a refused password and a database number the server lacks are `ConfigurationError`s
  (see `_driver.translate`): retrying cannot fix them.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio
from redis import exceptions as rx

from langmem_prod.errors import ConfigurationError
from langmem_prod.store.redis._driver import translate

DEFAULT_CONNECT_TIMEOUT = 5.0
_BAD_URL = (
    "the Redis URL is malformed ({reason}); write it as "
    "redis://[user:password@]host:6379/0 (rediss:// for TLS, unix:///path for a socket)"
)


def client_options(pool_size: int | None, connect_timeout: float) -> dict[str, Any]:
    """redis-py keyword arguments for `pool_size` and `connect_timeout`, checked.

    >>> client_options(20, 5)
    {'socket_connect_timeout': 5.0, 'max_connections': 20}
    """
    if isinstance(connect_timeout, bool) or not isinstance(connect_timeout, int | float):
        raise ConfigurationError("connect_timeout must be a number of seconds")
    if not 0 < connect_timeout < 1e6:
        raise ConfigurationError("connect_timeout must be a positive number of seconds")
    options: dict[str, Any] = {"socket_connect_timeout": float(connect_timeout)}
    if pool_size is not None:
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
            raise ConfigurationError("pool_size must be a positive int (connections)")
        options["max_connections"] = pool_size
    return options


def sync_client(
    url: str, *, cluster: bool, pool_size: int | None, connect_timeout: float
) -> redis.Redis | redis.RedisCluster:
    """A sync client (or cluster client) on `url`."""
    options = client_options(pool_size, connect_timeout)
    try:
        if cluster:
            return redis.RedisCluster.from_url(url, **options)
        return redis.Redis.from_url(url, **options)
    except ValueError as exc:
        raise ConfigurationError(_BAD_URL.format(reason=exc)) from exc
    except rx.RedisError as exc:  # a cluster client connects at once
        raise translate(exc) from exc


def async_client(
    url: str, *, cluster: bool, pool_size: int | None, connect_timeout: float
) -> redis.asyncio.Redis | redis.asyncio.RedisCluster:
    """An asyncio client (or cluster client) on `url`."""
    options = client_options(pool_size, connect_timeout)
    try:
        if cluster:
            return redis.asyncio.RedisCluster.from_url(url, **options)
        return redis.asyncio.Redis.from_url(url, **options)
    except ValueError as exc:
        raise ConfigurationError(_BAD_URL.format(reason=exc)) from exc

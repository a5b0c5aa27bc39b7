"""What `RedisStore` and `AsyncRedisStore` share: construction and the key layout."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import Generic, TypeVar

from langgraph.store.base import IndexConfig, TTLConfig

from langmem_prod.errors import ConfigurationError
from langmem_prod.store._access import TrackAccess
from langmem_prod.store._base import StoreBase
from langmem_prod.store._flows import Flows
from langmem_prod.store._retry import RetryPolicy
from langmem_prod.store._transform import ValueTransform
from langmem_prod.store._values import DEFAULT_MAX_VALUE_BYTES
from langmem_prod.store.redis import _stored
from langmem_prod.store.redis._gen import RedisConfig, batch_gen, flush_gen, sweep_gen
from langmem_prod.store.redis._keys import DEFAULT_PREFIX, DEFAULT_SHARDS, KeyLayout
from langmem_prod.store.redis._slots import DEFAULT_POOL_TIMEOUT, check_pool_timeout

C = TypeVar("C")
DEFAULT_SHARD_DEPTH = 2
# Lua's C stack bounds how many floats one struct.unpack may return.
_MAX_DIMS = 7000
_URL_GIVEN = (
    "{cls} takes a redis-py client, not a URL; open the store on a URL with "
    "`with {cls}.from_url(url) as store:` (`async with` for AsyncRedisStore)"
)


class RedisStoreBase(StoreBase, Generic[C]):
    """Construction shared by the sync and async Redis stores.

    A concrete store says how to run generators on its client (`_new_runner`); the sync
    or async surface (`SyncStore`, `AsyncStore`) provides the rest.
    """

    _cfg: RedisConfig

    def __init__(
        self,
        client: C,
        *,
        prefix: str = DEFAULT_PREFIX,
        shards: int = DEFAULT_SHARDS,
        shard_depth: int = DEFAULT_SHARD_DEPTH,
        index: IndexConfig | None = None,
        ttl: TTLConfig | None = None,
        track_access: TrackAccess = "batched",
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        start_sweeper: bool = True,
        flush_interval: float = 1.0,
        retry: RetryPolicy | None = None,
        clock: Callable[[], datetime] | None = None,
        values: ValueTransform | None = None,
        pool_timeout: float = DEFAULT_POOL_TIMEOUT,
    ) -> None:
        super().__init__()
        if isinstance(client, str):
            raise ConfigurationError(_URL_GIVEN.format(cls=type(self).__name__))
        if isinstance(shard_depth, bool) or not isinstance(shard_depth, int) or shard_depth < 1:
            raise ConfigurationError("shard_depth must be an int >= 1")
        self._init_common(
            index=index,
            ttl=ttl,
            track_access=track_access,
            max_value_bytes=max_value_bytes,
            start_sweeper=start_sweeper,
            flush_interval=flush_interval,
            retry=retry,
            clock=clock,
            values=values,
        )
        if self._index is not None and self._index.dims > _MAX_DIMS:
            raise ConfigurationError(f"the Redis store takes at most {_MAX_DIMS} dims")
        keys = KeyLayout(prefix, shards)
        self._cfg = RedisConfig(keys, shard_depth, self._index, track_access)
        self._flows = Flows(
            functools.partial(batch_gen, self._cfg),
            functools.partial(flush_gen, self._cfg),
            functools.partial(sweep_gen, self._cfg),
            functools.partial(_stored.page_gen, self._cfg),
            functools.partial(_stored.replace_gen, self._cfg),
        )
        self._worker_name = f"langmem-redis-{prefix}"
        self.client = client
        self._pool_timeout = check_pool_timeout(pool_timeout)
        self._new_runner()
        self._new_worker()

    @property
    def prefix(self) -> str:
        """The prefix of every key this store writes."""
        return self._cfg.keys.prefix

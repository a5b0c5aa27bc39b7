"""`AsyncRedisStore`: the asyncio LangGraph store on Redis, Valkey or Redis Cluster."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Self

import redis.asyncio

from langmem_prod.errors import ConfigurationError
from langmem_prod.store._async import AsyncStore
from langmem_prod.store.redis._base import RedisStoreBase
from langmem_prod.store.redis._connect import DEFAULT_CONNECT_TIMEOUT, async_client
from langmem_prod.store.redis._distance import check_distance_gen
from langmem_prod.store.redis._driver import AsyncRedisRunner
from langmem_prod.store.redis._quota_gen import set_limits_gen, usage_gen


class AsyncRedisStore(RedisStoreBase[redis.asyncio.Redis | redis.asyncio.RedisCluster], AsyncStore):
    """LangGraph `BaseStore` on Redis or Valkey for asyncio; concurrent reads share a round trip.

    Arguments are those of `RedisStore`, with a `redis.asyncio` client.

    Example:
        >>> import asyncio
        >>> from langmem_prod import AsyncRedisStore
        >>> from langmem_prod.embedded import embedded_redis
        >>> async def main(url):
        ...     async with AsyncRedisStore.from_url(url) as store:
        ...         await store.setup()
        ...         await store.aput(("users", "u1"), "prefs", {"theme": "dark"})
        ...         return (await store.aget(("users", "u1"), "prefs")).value
        >>> with embedded_redis() as url:
        ...     asyncio.run(main(url))
        {'theme': 'dark'}
    """

    _runner: AsyncRedisRunner

    def _new_runner(self) -> None:
        if not isinstance(self.client, redis.asyncio.Redis | redis.asyncio.RedisCluster):
            raise ConfigurationError(
                "AsyncRedisStore needs a redis.asyncio Redis or RedisCluster client; for a "
                "synchronous client use RedisStore"
            )
        self._runner = AsyncRedisRunner(
            self.client, self.embeddings, self._retry, pool_timeout=self._pool_timeout
        )

    @classmethod
    @asynccontextmanager
    async def from_url(
        cls,
        url: str,
        *,
        cluster: bool = False,
        pool_size: int | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        **kwargs: Any,
    ) -> AsyncIterator[Self]:
        """Connect to `url` (a cluster node when `cluster`), yield a store, then close both.

        Arguments are those of `RedisStore.from_url`.
        """
        client = async_client(
            url, cluster=cluster, pool_size=pool_size, connect_timeout=connect_timeout
        )
        try:
            async with cls(client, **kwargs) as store:
                yield store
        finally:
            await client.aclose()

    async def setup(self) -> None:
        """Check the server (Redis >= 7 or Valkey >= 8), load the scripts, check the index."""
        await self._runner.setup_server()
        await self._runner.run(check_distance_gen(self._cfg.keys, self._index))

    async def aset_tenant_limits(
        self, tenant_id: str, *, max_items: int | None = None, max_bytes: int | None = None
    ) -> None:
        """Replace the quota of tenant `tenant_id`, as `RedisStore.set_tenant_limits`."""
        await self._runner.run(set_limits_gen(self._cfg, tenant_id, max_items, max_bytes))

    async def atenant_usage(self, tenant_id: str) -> dict[str, Any]:
        """The tenant's usage and limits, as `RedisStore.tenant_usage`."""
        return await self._runner.run(usage_gen(self._cfg, tenant_id))

"""`RedisStore`: the synchronous LangGraph store on Redis, Valkey or Redis Cluster."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Self

import redis

from langmem_prod.errors import ConfigurationError
from langmem_prod.store._sync import SyncStore
from langmem_prod.store.redis._base import RedisStoreBase
from langmem_prod.store.redis._connect import DEFAULT_CONNECT_TIMEOUT, sync_client
from langmem_prod.store.redis._distance import check_distance_gen
from langmem_prod.store.redis._driver import SyncRedisRunner, close_client
from langmem_prod.store.redis._quota_gen import set_limits_gen, usage_gen


class RedisStore(RedisStoreBase[redis.Redis | redis.RedisCluster], SyncStore):
    """LangGraph `BaseStore` on Redis >= 7 or Valkey >= 8, standalone or Cluster; no modules.

    Each namespace lives in one hash slot, so the store runs unchanged on Redis Cluster.
    Filters and semantic search run in Lua inside Redis; `get` is one GET.

    Example:
        >>> from langmem_prod import RedisStore
        >>> from langmem_prod.embedded import embedded_redis
        >>> with embedded_redis() as url, RedisStore.from_url(url) as store:
        ...     store.setup()
        ...     store.put(("users", "u1"), "prefs", {"theme": "dark", "score": 9})
        ...     store.get(("users", "u1"), "prefs").value["theme"]
        ...     [i.key for i in store.search(("users",), filter={"score": {"$gte": 5}})]
        'dark'
        ['prefs']

    Args:
        client: a `redis.Redis` or `redis.RedisCluster` (bytes replies; the default).
            A URL is refused with a pointer to `from_url`.
        prefix: the prefix of every key the store writes.
        shards: how many hash slots the store spreads namespaces over.
        shard_depth: how many leading labels choose a namespace's shard; searches and
            listings under a prefix at least that deep touch a single shard.
        index: LangGraph's `IndexConfig` for semantic search (exact, in Lua), with
            `distance_type` as for `PostgresStore`; `setup()` records the type under the
            prefix and refuses another one later.
        ttl, track_access, max_value_bytes, start_sweeper, flush_interval, retry, clock,
        values: as for `PostgresStore`.
        pool_timeout: seconds a call waits for one of the client's connections when all
            are busy (calls queue instead of failing), then `BackendTimeoutError`.
    """

    _runner: SyncRedisRunner

    def _new_runner(self) -> None:
        if not isinstance(self.client, redis.Redis | redis.RedisCluster):
            raise ConfigurationError(
                "RedisStore needs a redis.Redis or redis.RedisCluster client; for a "
                "redis.asyncio client use AsyncRedisStore"
            )
        self._runner = SyncRedisRunner(
            self.client, self.embeddings, self._retry, pool_timeout=self._pool_timeout
        )

    @classmethod
    @contextmanager
    def from_url(
        cls,
        url: str,
        *,
        cluster: bool = False,
        pool_size: int | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        **kwargs: Any,
    ) -> Iterator[Self]:
        """Connect to `url` (a cluster node when `cluster`), yield a store, then close both.

        Args:
            url: redis://[user:password@]host:6379/0, rediss:// or unix://.
            cluster: `url` is a node of a Redis Cluster.
            pool_size: the most connections the client opens (per node of a
                cluster; redis-py's default, 100); more callers queue for up to the
                store's `pool_timeout` (default 30 s), then get `BackendTimeoutError`.
            connect_timeout: seconds to reach the server before `BackendUnavailableError`.
                A malformed URL, a refused password or a missing database number raise
                `ConfigurationError` at once.
            **kwargs: the store's arguments.
        """
        client = sync_client(
            url, cluster=cluster, pool_size=pool_size, connect_timeout=connect_timeout
        )
        try:
            with cls(client, **kwargs) as store:
                yield store
        finally:
            close_client(client)

    def setup(self) -> None:
        """Check the server (Redis >= 7 or Valkey >= 8), load the scripts, check the index."""
        self._runner.setup_server()
        self._runner.run(check_distance_gen(self._cfg.keys, self._index))

    def set_tenant_limits(
        self, tenant_id: str, *, max_items: int | None = None, max_bytes: int | None = None
    ) -> None:
        """Replace the quota of tenant `tenant_id` (items under ("tenants", tenant_id, ...)).

        None is unlimited. Writes that would take the tenant over a limit are refused
        with `QuotaExceededError`, atomically, inside Redis; deletes, updates and TTL
        expiry free room. Needs `shard_depth` <= 2, so a tenant lives in one shard.
        """
        self._runner.run(set_limits_gen(self._cfg, tenant_id, max_items, max_bytes))

    def tenant_usage(self, tenant_id: str) -> dict[str, Any]:
        """The tenant's `items`, `bytes`, `max_items`, `max_bytes`, `items_used`, `bytes_used`.

        Sizes are those PostgreSQL counts (the value's jsonb text, in UTF-8 bytes).
        """
        return self._runner.run(usage_gen(self._cfg, tenant_id))

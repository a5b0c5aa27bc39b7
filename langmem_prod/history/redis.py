"""`RedisChatMessageHistory`: a LangChain chat history on Redis, Valkey or Redis Cluster."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import redis
import redis.asyncio

from langmem_prod.codec import Codec
from langmem_prod.history._base import ChatHistoryBase, HistoryLimiter, split_sources
from langmem_prod.history._messages import check_max_messages, check_ttl
from langmem_prod.history._redis import DEFAULT_PREFIX, SCRIPTS, RedisConversation, check_prefix
from langmem_prod.history._shared import aredis_client, redis_client
from langmem_prod.security.pii import Redactor
from langmem_prod.store._retry import RetryPolicy
from langmem_prod.store._runner import AsyncRunnerBase
from langmem_prod.store.redis._driver import AsyncRedisRunner, SyncRedisRunner

SyncClient = redis.Redis | redis.RedisCluster
AsyncClient = redis.asyncio.Redis | redis.asyncio.RedisCluster

_ACCEPTED = "a redis.Redis, redis.RedisCluster or redis.asyncio client"


class RedisChatMessageHistory(ChatHistoryBase):
    """A conversation's messages in Redis >= 7 or Valkey >= 8 (no modules), or a Cluster.

    The conversation is a list and a hash in one hash slot; an append is one atomic
    script (safe to retry); the TTL is one expiry for the whole conversation, refreshed
    on every write; reads can take the last N messages or a page.

    Example:
        >>> from langchain_core.messages import AIMessage, HumanMessage
        >>> from langmem_prod import RedisChatMessageHistory
        >>> from langmem_prod.embedded import embedded_redis
        >>> with embedded_redis() as url:
        ...     history = RedisChatMessageHistory("session-1", url, ttl=3600)
        ...     history.add_messages([HumanMessage("hi"), AIMessage("hello!")])
        ...     [m.content for m in history.messages]
        ['hi', 'hello!']

    Args:
        session_id: any non-empty string naming the conversation.
        connection: a `redis.Redis` / `redis.RedisCluster` (sync methods), a
            `redis.asyncio` client (async methods), or a URL (both; histories on one URL
            share one client per process and per event loop).
        async_connection: an async client, when `connection` is a sync one.
        cluster: with a URL, connect to a Redis Cluster.
        tenant_id: the tenant owning the conversation (part of its key).
        user_id: the user the conversation belongs to, stored with it.
        prefix: the prefix of the conversation's keys.
        max_messages: keep only the newest N messages.
        ttl: seconds (or a timedelta) after the last write when the conversation expires.
        codec: transforms stored bytes (encryption plugs in here).
        redactor: redacts PII from messages (and saved state) before they are stored,
            e.g. `tenancy.tenant_redactor(tenant, secret)` for the tenant's policy.
        limiter: takes a token from `tenant_id`'s bucket before every read, write and
            clear (`RateLimitedError` when empty), e.g. `tenancy.TenantRateLimiter` for
            the limit of the tenant's plan; needs `tenant_id`.
        retry: how transient connection failures are retried.
        clock: returns the current aware datetime (timestamps in the session hash).
    """

    def __init__(
        self,
        session_id: str,
        connection: str | SyncClient | AsyncClient,
        *,
        async_connection: AsyncClient | None = None,
        cluster: bool = False,
        tenant_id: str | None = None,
        user_id: str | None = None,
        prefix: str = DEFAULT_PREFIX,
        max_messages: int | None = None,
        ttl: float | timedelta | None = None,
        codec: Codec | None = None,
        redactor: Redactor | None = None,
        limiter: HistoryLimiter | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._init_common(
            session_id,
            tenant_id=tenant_id,
            user_id=user_id,
            codec=codec,
            clock=clock,
            retry=retry,
            redactor=redactor,
            limiter=limiter,
        )
        self._conversation = RedisConversation(
            check_prefix(prefix),
            self.tenant_id,
            self.session_id,
            self.user_id,
            check_ttl(ttl),
            check_max_messages(max_messages),
        )
        self._url = connection if isinstance(connection, str) else None
        self._cluster = cluster
        sync, asynchronous = split_sources(
            connection,
            async_connection,
            (redis.Redis, redis.RedisCluster),
            (redis.asyncio.Redis, redis.asyncio.RedisCluster),
            _ACCEPTED,
        )
        if self._url is not None:
            sync = redis_client(self._url, cluster)
        self._sync = SyncRedisRunner(sync, None, self._retry, SCRIPTS) if sync else None
        self._async = (
            AsyncRedisRunner(asynchronous, None, self._retry, SCRIPTS) if asynchronous else None
        )

    async def _arunner(self) -> AsyncRunnerBase[Any] | None:
        if self._url is not None:
            client = aredis_client(self._url, self._cluster)
            if not isinstance(self._async, AsyncRedisRunner) or self._async.client is not client:
                self._async = AsyncRedisRunner(client, None, self._retry, SCRIPTS)
        return self._async

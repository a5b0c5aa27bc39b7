"""LangGraph stores on Redis, Valkey and Redis Cluster, with no server modules."""

from langmem_prod.store.redis.aio import AsyncRedisStore
from langmem_prod.store.redis.sync import RedisStore

__all__ = ["AsyncRedisStore", "RedisStore"]

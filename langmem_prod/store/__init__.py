"""LangGraph `BaseStore` implementations."""

from langmem_prod.store.postgres import AsyncPostgresStore, PostgresStore
from langmem_prod.store.redis import AsyncRedisStore, RedisStore

__all__ = ["AsyncPostgresStore", "AsyncRedisStore", "PostgresStore", "RedisStore"]

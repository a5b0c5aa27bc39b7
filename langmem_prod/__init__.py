"""langmem_prod: production long-term memory for LangGraph and LangChain."""

from langmem_prod.embeddings import HashingEmbeddings
from langmem_prod.errors import LangmemError
from langmem_prod.history import (
    ConversationBufferMemory,
    ConversationSummaryBufferMemory,
    ConversationTokenBufferMemory,
    PostgresChatMessageHistory,
    RedisChatMessageHistory,
)
from langmem_prod.store import AsyncPostgresStore, AsyncRedisStore, PostgresStore, RedisStore
from langmem_prod.store._retry import RetryPolicy

__all__ = [
    "AsyncPostgresStore",
    "AsyncRedisStore",
    "ConversationBufferMemory",
    "ConversationSummaryBufferMemory",
    "ConversationTokenBufferMemory",
    "HashingEmbeddings",
    "LangmemError",
    "PostgresChatMessageHistory",
    "PostgresStore",
    "RedisChatMessageHistory",
    "RedisStore",
    "RetryPolicy",
]

"""langmem_prod: production long-term memory for LangGraph and LangChain."""

from langmem_prod.embeddings import HashingEmbeddings
from langmem_prod.errors import LangmemError
from langmem_prod.history import (
    ContextAwareMemory,
    ConversationBufferMemory,
    ConversationSummaryBufferMemory,
    ConversationTokenBufferMemory,
    PostgresChatMessageHistory,
    RedisChatMessageHistory,
)
from langmem_prod.optimizer import ContextOptimizer, optimize_messages
from langmem_prod.store import AsyncPostgresStore, AsyncRedisStore, PostgresStore, RedisStore
from langmem_prod.store._retry import RetryPolicy

__all__ = [
    "AsyncPostgresStore",
    "AsyncRedisStore",
    "ContextAwareMemory",
    "ContextOptimizer",
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
    "optimize_messages",
]

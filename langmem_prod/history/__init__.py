"""LangChain chat message histories on PostgreSQL and Redis, and memory classes over them."""

from langmem_prod.history._base import Transcript
from langmem_prod.history._shared import aclose_shared_connections, close_shared_connections
from langmem_prod.history.context_memory import ContextAwareMemory
from langmem_prod.history.memory import (
    ChatMemory,
    ConversationBufferMemory,
    ConversationSummaryBufferMemory,
    ConversationTokenBufferMemory,
)
from langmem_prod.history.postgres import PostgresChatMessageHistory
from langmem_prod.history.redis import RedisChatMessageHistory

__all__ = [
    "ChatMemory",
    "ContextAwareMemory",
    "ConversationBufferMemory",
    "ConversationSummaryBufferMemory",
    "ConversationTokenBufferMemory",
    "PostgresChatMessageHistory",
    "RedisChatMessageHistory",
    "Transcript",
    "aclose_shared_connections",
    "close_shared_connections",
]

"""LangChain chat message histories on PostgreSQL and Redis, and memory classes over them."""

from langmem_prod.history._base import Transcript
from langmem_prod.history.postgres import PostgresChatMessageHistory
from langmem_prod.history.redis import RedisChatMessageHistory

__all__ = [
    "PostgresChatMessageHistory",
    "RedisChatMessageHistory",
    "Transcript",
]

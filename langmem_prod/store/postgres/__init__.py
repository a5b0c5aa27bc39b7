"""LangGraph stores on PostgreSQL: `PostgresStore` and `AsyncPostgresStore`."""

from langmem_prod.store.postgres.aio import AsyncPostgresStore
from langmem_prod.store.postgres.sync import PostgresStore

__all__ = ["AsyncPostgresStore", "PostgresStore"]

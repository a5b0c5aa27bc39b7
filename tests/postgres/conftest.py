"""Postgres-specific fixtures: sync stores on the test servers, raw connections."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from langmem_prod import PostgresStore
from tests.conftest import PgServer, drop_schema, new_schema

MakePgStore = Callable[..., PostgresStore]


@pytest.fixture
def make_pg_store(pg: PgServer) -> Iterator[MakePgStore]:
    """Build sync stores on pools (each in its own schema unless one is given)."""
    stack: list[Any] = []
    schemas: set[str] = set()

    def make(*, schema: str | None = None, setup: bool = True, **kwargs: Any) -> PostgresStore:
        schema = new_schema() if schema is None else schema
        if schema:
            schemas.add(schema)
        manager = PostgresStore.from_conn_string(pg.url, schema=schema, **kwargs)
        store = manager.__enter__()
        stack.append(manager)
        if setup:
            store.setup()
        return store

    yield make
    for manager in reversed(stack):
        manager.__exit__(None, None, None)
    for schema in schemas:
        drop_schema(pg.url, schema)


@pytest.fixture
def sql(pg: PgServer) -> Iterator[psycopg.Connection]:
    with psycopg.connect(pg.url, autocommit=True) as conn:
        yield conn

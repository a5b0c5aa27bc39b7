"""What the hostile-input and rate-limit tests share: ordinary roles, stores, deep values.

PostgreSQL runs as an ordinary role (NOSUPERUSER, NOBYPASSRLS, NOCREATEROLE, NOCREATEDB,
allowed to CREATE schemas), never as the superuser of the test server.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from tests.backends import Backend
from tests.conftest import PgServer, RedisServer


@dataclasses.dataclass
class Ordinary:
    """An ordinary LOGIN role on a PostgreSQL server, and its connection string."""

    server: PgServer
    role: str
    url: str


def _admin(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(url, autocommit=True)


def ordinary_role(server: PgServer) -> Ordinary:
    """Create a role that may create schemas and nothing else."""
    role = f"lm_hostile_{uuid.uuid4().hex[:10]}"
    with _admin(server.url) as conn:
        row = conn.execute("SELECT current_database()").fetchone()
        assert row is not None
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB").format(
                sql.Identifier(role)
            )
        )
        conn.execute(
            sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(
                sql.Identifier(row[0]), sql.Identifier(role)
            )
        )
    return Ordinary(server, role, make_conninfo(server.url, user=role))


def drop_role(ordinary: Ordinary) -> None:
    """Drop the role and everything it owns (its schemas)."""
    with _admin(ordinary.server.url) as conn:
        row = conn.execute("SELECT current_database()").fetchone()
        assert row is not None
        conn.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(sql.Identifier(ordinary.role)))
        conn.execute(
            sql.SQL("REVOKE CREATE ON DATABASE {} FROM {}").format(
                sql.Identifier(row[0]), sql.Identifier(ordinary.role)
            )
        )
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(ordinary.role)))


@pytest.fixture
def server(backend_server: PgServer | RedisServer) -> Iterator[PgServer | RedisServer]:
    """Every server of every backend; PostgreSQL as an ordinary role."""
    if isinstance(backend_server, RedisServer):
        yield backend_server
        return
    ordinary = ordinary_role(backend_server)
    yield dataclasses.replace(backend_server, url=ordinary.url)
    drop_role(ordinary)


@pytest.fixture
async def backend(server: PgServer | RedisServer) -> AsyncIterator[Backend]:
    made = Backend(server)
    yield made
    await made.cleanup()


async def call(obj: Any, flavour: str, method: str, *args: Any, **kwargs: Any) -> Any:
    """`obj.method(...)` in a worker thread, or `await obj.amethod(...)`."""
    if flavour == "async":
        return await getattr(obj, "a" + method)(*args, **kwargs)
    return await asyncio.to_thread(getattr(obj, method), *args, **kwargs)


def nested(depth: int, *, kind: str = "dict", leaf: Any = "x") -> Any:
    """A value of `depth` nested dicts (or lists) around `leaf`, built without recursion."""
    value = leaf
    for _ in range(depth):
        value = {"a": value} if kind == "dict" else [value]
    return value

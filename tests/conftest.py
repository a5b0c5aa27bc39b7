"""Test servers: real PostgreSQL and Redis, never a mock of them.

Every run starts an embedded PostgreSQL 18 with pgvector, an embedded Valkey 9 and a
3-master Redis Cluster on loopback. `LANGMEM_TEST_PG_URL` and `LANGMEM_TEST_REDIS_URL` add
the given servers (CI: the machine's PostgreSQL 15 and Redis 7). Each store gets its own
schema or key prefix, removed afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import sql

from langmem_prod.embedded import EmbeddedPostgres, EmbeddedRedis, EmbeddedRedisCluster

PG_TARGETS = ["embedded"] + (["env"] if os.environ.get("LANGMEM_TEST_PG_URL") else [])
REDIS_TARGETS = ["embedded", "cluster"] + (
    ["env"] if os.environ.get("LANGMEM_TEST_REDIS_URL") else []
)


@dataclass(frozen=True)
class PgServer:
    name: str
    url: str
    has_vector: bool
    version: int


@dataclass(frozen=True)
class RedisServer:
    name: str
    url: str
    cluster: bool


@pytest.fixture(scope="session")
def embedded_pg() -> Iterator[EmbeddedPostgres]:
    with EmbeddedPostgres() as server:
        yield server


@pytest.fixture(scope="session")
def embedded_valkey() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis() as server:
        yield server


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[EmbeddedRedisCluster]:
    with EmbeddedRedisCluster() as cluster:
        yield cluster


def pg_server(request: pytest.FixtureRequest, target: str) -> PgServer:
    """The PostgreSQL server of a target ("embedded" or "env")."""
    if target == "env":
        url = os.environ["LANGMEM_TEST_PG_URL"]
    else:
        url = request.getfixturevalue("embedded_pg").url
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT current_setting('server_version_num')::int / 10000, "
            "EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector')"
        ).fetchone()
        assert row is not None
    return PgServer(target, url, bool(row[1]), int(row[0]))


def redis_server(request: pytest.FixtureRequest, target: str) -> RedisServer:
    """The Redis server of a target ("embedded" Valkey, "cluster" or "env")."""
    if target == "env":
        return RedisServer(target, os.environ["LANGMEM_TEST_REDIS_URL"], cluster=False)
    if target == "cluster":
        return RedisServer(target, request.getfixturevalue("redis_cluster").url, cluster=True)
    return RedisServer(target, request.getfixturevalue("embedded_valkey").url, cluster=False)


BACKENDS = [f"postgres-{t}" for t in PG_TARGETS] + [f"redis-{t}" for t in REDIS_TARGETS]


@pytest.fixture(params=BACKENDS)
def backend_server(request: pytest.FixtureRequest) -> PgServer | RedisServer:
    """Every server of every backend (contract suites run on each)."""
    kind, target = str(request.param).split("-", 1)
    if kind == "postgres":
        return pg_server(request, target)
    return redis_server(request, target)


@pytest.fixture(params=["sync", "async"])
def flavour(request: pytest.FixtureRequest) -> str:
    """Sync or async clients and methods."""
    return str(request.param)


@pytest.fixture(scope="session", params=PG_TARGETS)
def pg(request: pytest.FixtureRequest) -> PgServer:
    return pg_server(request, request.param)


@pytest.fixture(scope="session", params=REDIS_TARGETS)
def rs(request: pytest.FixtureRequest) -> RedisServer:
    return redis_server(request, request.param)


@pytest.fixture
def vector_pg(pg: PgServer) -> PgServer:
    if not pg.has_vector:
        pytest.skip(f"the {pg.name} PostgreSQL {pg.version} server has no pgvector")
    return pg


def new_schema() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


def drop_schema(url: str, schema: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def schema(pg: PgServer) -> Iterator[str]:
    name = new_schema()
    yield name
    drop_schema(pg.url, name)

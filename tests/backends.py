"""Build stores of every backend for the tests, and remove what they wrote afterwards."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import psycopg
import redis
import redis.asyncio
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from langmem_prod import (
    AsyncPostgresStore,
    AsyncRedisStore,
    PostgresChatMessageHistory,
    PostgresStore,
    RedisChatMessageHistory,
    RedisStore,
)
from langmem_prod.store.redis._driver import close_client
from tests.conftest import PgServer, RedisServer, drop_schema, new_schema


class Backend:
    """One server the contract suite runs on; makes stores and cleans up after them."""

    def __init__(self, server: PgServer | RedisServer) -> None:
        self.server = server
        self.kind = "postgres" if isinstance(server, PgServer) else "redis"
        self.has_vectors = server.has_vector if isinstance(server, PgServer) else True
        self._places: set[str] = set()
        self._clients: list[Any] = []
        self._sources: dict[str, Any] = {}

    def place(self) -> str:
        """A fresh schema (Postgres) or key prefix (Redis)."""
        name = new_schema()
        self._places.add(name)
        return name

    async def make(self, flavour: str, place: str, **kwargs: Any) -> Any:
        """A store of this backend and flavour, in `place`."""
        if self.kind == "postgres":
            return await self._make_postgres(flavour, place, **kwargs)
        return self._make_redis(flavour, place, **kwargs)

    async def _pg_source(self, flavour: str) -> Any:
        url = self.server.url
        if flavour == "async":
            apool: AsyncConnectionPool = AsyncConnectionPool(
                url, min_size=1, max_size=4, kwargs={"autocommit": True}, open=False
            )
            await apool.open(wait=True)
            self._clients.append(apool)
            return apool
        pool: ConnectionPool = ConnectionPool(
            url, min_size=1, max_size=4, kwargs={"autocommit": True}, open=False
        )
        pool.open(wait=True)
        self._clients.append(pool)
        return pool

    def _redis_client(self, flavour: str) -> Any:
        assert isinstance(self.server, RedisServer)
        cluster, url = self.server.cluster, self.server.url
        client: Any
        if flavour == "async":
            client = (
                redis.asyncio.RedisCluster.from_url(url)
                if cluster
                else redis.asyncio.Redis.from_url(url)
            )
        else:
            client = redis.RedisCluster.from_url(url) if cluster else redis.Redis.from_url(url)
        self._clients.append(client)
        return client

    async def _make_postgres(self, flavour: str, schema: str, **kwargs: Any) -> Any:
        source = await self._pg_source(flavour)
        cls = AsyncPostgresStore if flavour == "async" else PostgresStore
        return cls(source, schema=schema, **kwargs)

    def _make_redis(self, flavour: str, prefix: str, **kwargs: Any) -> Any:
        cls = AsyncRedisStore if flavour == "async" else RedisStore
        return cls(self._redis_client(flavour), prefix=prefix, **kwargs)

    async def make_history(self, flavour: str, place: str, session_id: str, **kwargs: Any) -> Any:
        """A chat history of this backend on a (shared) client of `flavour`, in `place`."""
        if flavour not in self._sources:
            self._sources[flavour] = (
                await self._pg_source(flavour)
                if self.kind == "postgres"
                else self._redis_client(flavour)
            )
        source = self._sources[flavour]
        if self.kind == "postgres":
            return PostgresChatMessageHistory(session_id, source, schema=place, **kwargs)
        return RedisChatMessageHistory(session_id, source, prefix=place, **kwargs)

    def sync_store(self, place: str, **kwargs: Any) -> Any:
        """A sync store on a single connection (no pool threads), for property tests."""
        if self.kind == "postgres":
            conn = psycopg.connect(self.server.url, autocommit=True)
            self._clients.append(conn)
            return PostgresStore(conn, schema=place, **kwargs)
        return self._make_redis("sync", place, **kwargs)

    async def stored_items(self, store: Any) -> int:
        """How many items the backend holds for `store`, expired or not, swept or not."""
        if self.kind == "postgres":
            async with await psycopg.AsyncConnection.connect(self.server.url) as conn:
                cur = await conn.execute(f'SELECT count(*) FROM "{store.schema}".items')
                row = await cur.fetchone()
                assert row is not None
                return int(row[0])
        return await asyncio.to_thread(self._count_items, store.prefix)

    def _redis(self) -> Any:
        assert isinstance(self.server, RedisServer)
        url = self.server.url
        return (
            redis.RedisCluster.from_url(url) if self.server.cluster else redis.Redis.from_url(url)
        )

    def _count_items(self, prefix: str) -> int:
        client = self._redis()
        try:
            return sum(1 for _ in client.scan_iter(match=f"{prefix}:{{*}}:r:*", count=1000))
        finally:
            close_client(client)

    async def cleanup(self) -> None:
        """Close every client and remove every schema or key prefix made."""
        for client in self._clients:
            if isinstance(
                client, AsyncConnectionPool | redis.asyncio.Redis | redis.asyncio.RedisCluster
            ):
                await (
                    client.close() if isinstance(client, AsyncConnectionPool) else client.aclose()
                )
            else:
                await asyncio.to_thread(close_client, client)
        for place in self._places:
            await asyncio.to_thread(self._remove, place)

    async def raw_dump(self, place: str) -> bytes:
        """Every byte the backend holds under `place`: whole rows, or every key's data."""
        if self.kind == "postgres":
            async with await psycopg.AsyncConnection.connect(self.server.url) as conn:
                dump = b""
                for (table,) in await (
                    await conn.execute(
                        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                        (place,),
                    )
                ).fetchall():
                    cur = await conn.execute(f'SELECT t::text FROM "{place}"."{table}" t')
                    dump += "\n".join(row[0] for row in await cur.fetchall()).encode()
                # Row text shows bytea as hex: add those columns' bytes as they are.
                for table, column in await (
                    await conn.execute(
                        "SELECT table_name, column_name FROM information_schema.columns "
                        "WHERE table_schema = %s AND data_type = 'bytea'",
                        (place,),
                    )
                ).fetchall():
                    cur = await conn.execute(f'SELECT "{column}" FROM "{place}"."{table}"')
                    dump += b"\n".join(bytes(row[0] or b"") for row in await cur.fetchall())
                return dump
        return await asyncio.to_thread(self._redis_dump, place)

    def _redis_dump(self, place: str) -> bytes:
        client = self._redis()
        reads = {
            b"string": lambda k: [client.get(k)],
            b"hash": lambda k: [x for kv in client.hgetall(k).items() for x in kv],
            b"zset": lambda k: client.zrange(k, 0, -1),
            b"list": lambda k: client.lrange(k, 0, -1),
            b"set": lambda k: list(client.smembers(k)),
            b"stream": lambda k: [x for _, f in client.xrange(k) for kv in f.items() for x in kv],
        }
        try:
            parts: list[bytes] = []
            for key in client.scan_iter(match=f"{place}:*", count=1000):
                parts += [key, *(x or b"" for x in reads[client.type(key)](key))]
            return b"\n".join(parts)
        finally:
            close_client(client)

    def _remove(self, place: str) -> None:
        if self.kind == "postgres":
            drop_schema(self.server.url, place)
            return
        client = self._redis()
        try:
            for key in client.scan_iter(match=f"{place}:*", count=1000):
                client.delete(key)
        finally:
            close_client(client)


def unique_name() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"

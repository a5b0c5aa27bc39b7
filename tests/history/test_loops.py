"""Histories built from a URL across event loops: each loop's pool or client closes with it.

`asyncio.run` made a new pool per loop and left it open (two server connections per
loop, until the server refused clients), and could hang on the pool's workers.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import psycopg
import pytest
import redis
from langchain_core.messages import AIMessage, HumanMessage
from psycopg.conninfo import make_conninfo

from langmem_prod import PostgresChatMessageHistory, RedisChatMessageHistory
from langmem_prod.history._shared import pg_pool
from langmem_prod.store.redis._driver import close_client
from tests.conftest import PgServer

LOOPS = 50
LOOP_SECONDS = 10.0


def run_bounded(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """`asyncio.run(main())` in a thread, failing (not hanging) if it does not return."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(LOOP_SECONDS)
    assert not thread.is_alive(), f"asyncio.run did not return within {LOOP_SECONDS} s"
    if errors:
        raise errors[0]


def settles(count: Callable[[], int], expected: int) -> int:
    """The count once it reaches `expected` (servers drop closed clients a moment later)."""
    deadline = time.monotonic() + 5
    while (seen := count()) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return seen


def test_postgres_history_from_url_leaves_no_connection_per_loop(pg: PgServer, schema: str) -> None:
    name = f"langmem-loops-{uuid.uuid4().hex[:8]}"
    url = make_conninfo(pg.url, application_name=name)

    def count() -> int:
        with psycopg.connect(pg.url) as conn:
            sql = "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
            row = conn.execute(sql, (name,)).fetchone()
        return int(row[0]) if row else 0

    PostgresChatMessageHistory("setup", url, schema=schema).setup()
    sync_pool = pg_pool(url)  # the process's sync pool on the URL, which stays
    sync_pool.wait()
    before = settles(count, sync_pool.get_stats()["pool_size"])

    async def main() -> None:
        history = PostgresChatMessageHistory("s", url, schema=schema)
        await history.aadd_messages([HumanMessage("q"), AIMessage("a")])
        assert [m.content for m in await history.aget_messages(last=2)] == ["q", "a"]

    started = time.monotonic()
    for _ in range(LOOPS):
        run_bounded(main)
    assert time.monotonic() - started < LOOPS * 1.0
    assert settles(count, before) == before
    history = PostgresChatMessageHistory("s", url, schema=schema)
    assert len(history.messages) == 2 * LOOPS


@pytest.mark.parametrize("cluster", [False, True], ids=["redis", "cluster"])
def test_redis_history_from_url_leaves_no_connection_per_loop(
    request: pytest.FixtureRequest, cluster: bool
) -> None:
    server = request.getfixturevalue("redis_cluster" if cluster else "embedded_valkey")
    name = f"langmem-loops-{uuid.uuid4().hex[:8]}"
    url = f"{server.url}{'&' if '?' in server.url else '?'}client_name={name}"
    prefix = f"loops-{uuid.uuid4().hex[:8]}"
    admin: redis.Redis | redis.RedisCluster = (
        redis.RedisCluster.from_url(server.url) if cluster else redis.Redis.from_url(server.url)
    )

    def count() -> int:
        nodes = admin.get_nodes() if isinstance(admin, redis.RedisCluster) else [None]
        total = 0
        for node in nodes:
            clients = admin.client_list(target_nodes=node) if node else admin.client_list()
            total += sum(1 for c in clients if c.get("name") == name)
        return total

    async def main() -> None:
        history = RedisChatMessageHistory("s", url, cluster=cluster, prefix=prefix)
        await history.aadd_messages([HumanMessage("q"), AIMessage("a")])
        assert [m.content for m in await history.aget_messages(last=2)] == ["q", "a"]

    try:
        started = time.monotonic()
        for _ in range(LOOPS):
            run_bounded(main)
        assert time.monotonic() - started < LOOPS * 1.0
        assert settles(count, 0) == 0
        history = RedisChatMessageHistory("s", url, cluster=cluster, prefix=prefix)
        assert len(history.messages) == 2 * LOOPS
        history.clear()
    finally:
        close_client(admin)

"""Checkpoints and signed heads on each backend: windows, pages, upgrades, async twins."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis.asyncio
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from langmem_prod.compliance import FileWitness, PostgresAuditLog, RedisAuditLog, redis_audit
from langmem_prod.compliance._chain import EMPTY, extend, unchained
from langmem_prod.compliance._log import Job
from langmem_prod.compliance._verify import Read
from langmem_prod.compliance.audit import AUDIT_MIGRATIONS
from langmem_prod.errors import ConfigurationError
from langmem_prod.store.postgres._schema import _MIGRATIONS_TABLE, pending
from langmem_prod.store.postgres._sql import render
from tests.compliance.helpers import KEY
from tests.conftest import PgServer, RedisServer, drop_schema, new_schema
from tests.security.audit_insider import RedisInsider, redis_client
from tests.security.audit_insider import close as close_redis


@pytest.fixture
def make_log(backend_server: PgServer | RedisServer) -> Iterator[Any]:
    """Logs of one place (schema or prefix) on the server; `make_log(key)`."""
    place = new_schema()
    with ExitStack() as stack:
        if isinstance(backend_server, PgServer):
            stack.callback(drop_schema, backend_server.url, place)
            pool: ConnectionPool[Any] = stack.enter_context(
                ConnectionPool(backend_server.url, max_size=6, kwargs={"autocommit": True})
            )

            def make_pg(key: bytes | None = KEY) -> Any:
                log = PostgresAuditLog(pool, schema=place, key=key)
                log.setup()
                return log

            yield make_pg
            return
        client = redis_client(backend_server)
        stack.callback(_drop, client, place)
        yield lambda key=KEY: RedisAuditLog(client, prefix=place, key=key)


def _drop(client: Any, prefix: str) -> None:
    for name in client.scan_iter(match=f"{prefix}:*", count=1000):
        client.delete(name)
    close_redis(client)


def fill(log: Any, count: int, tenant: str = "acme") -> None:
    for n in range(count):
        log.record(tenant, [("put", ("notes",), f"k{n}")], agent="bot")


def read(log: Any, tenant: str, since: Any) -> Read:
    flows = log._flows
    return log._run(Job(lambda: flows.read_gen(tenant, since)))  # type: ignore[no-any-return]


def test_from_a_checkpoint_only_the_window_is_read(make_log: Any) -> None:
    log = make_log()
    fill(log, 12)
    checkpoint = log.checkpoint("acme")
    fill(log, 3)
    window = read(log, "acme", checkpoint)
    assert not window.whole and window.before == 10
    assert [e.seq for e in window.entries] == list(range(11, 16))
    assert log.verify("acme", since=checkpoint) == []
    assert log.verify("acme", since=checkpoint, full=True) == []
    assert read(log, "acme", None).whole and len(read(log, "acme", None).entries) == 15
    assert bool(checkpoint.position) is isinstance(log, RedisAuditLog)  # a stream id


def test_a_wrong_position_costs_a_whole_read_not_a_wrong_answer(rs: RedisServer) -> None:
    client, prefix = redis_client(rs), new_schema()
    try:
        log = RedisAuditLog(client, prefix=prefix, key=KEY)
        fill(log, 6)
        checkpoint = log.checkpoint("acme")
        fill(log, 2)
        assert checkpoint.position and not read(log, "acme", checkpoint).whole
        for position in ["", "garbage", "0-1", "99999999999999-0", checkpoint.position + "0"]:
            moved = replace(checkpoint, position=position)
            assert read(log, "acme", moved).whole
            assert log.verify("acme", since=moved) == []
    finally:
        _drop(client, prefix)


@pytest.mark.parametrize("key", [KEY, None], ids=["keyed", "unkeyed"])
def test_redis_reads_page_by_page_while_others_write(
    rs: RedisServer, monkeypatch: pytest.MonkeyPatch, key: bytes | None
) -> None:
    monkeypatch.setattr(redis_audit, "PAGE_ENTRIES", 7)
    client, prefix = redis_client(rs), new_schema()
    try:
        log = RedisAuditLog(client, prefix=prefix, key=key)
        fill(log, 30)
        assert [e.seq for e in log.entries("acme")] == list(range(1, 31))
        checkpoint = log.checkpoint("acme")
        stop = False

        def write() -> None:
            n = 0
            while not stop:
                n += 1
                RedisAuditLog(client, prefix=prefix, key=key).record(
                    "acme", [("put", ("a",), f"w{n}")]
                )

        with ThreadPoolExecutor(2) as pool:
            writers = [pool.submit(write) for _ in range(2)]
            try:
                reports = [log.verify("acme") for _ in range(10)]
                reports += [log.verify("acme", since=checkpoint) for _ in range(10)]
            finally:
                stop = True
            for writer in writers:
                writer.result()
        assert all(report == [] for report in reports), [r for r in reports if r][:1]
        RedisInsider(client, log).delete("acme", 12)
        assert any("jumps from 11 to 13" in p.reason for p in log.verify("acme"))
    finally:
        _drop(client, prefix)


def test_checkpoint_all_lists_every_tenant_with_a_chain(make_log: Any, tmp_path: Path) -> None:
    log = make_log()
    fill(log, 2)
    fill(log, 3, tenant="globex")
    points = log.checkpoint_all()
    assert [(c.tenant, c.seq) for c in points] == [("acme", 2), ("globex", 3)]
    assert [c.seq for c in log.checkpoint_all(["globex", "nobody"])] == [3, 0]
    witness = FileWitness(tmp_path / "w.jsonl")
    witness.write(*points)
    fill(log, 1)
    other = make_log()  # another process, the same key
    assert {t: other.verify_witnessed(t, witness) for t in witness.tenants()} == {
        "acme": [],
        "globex": [],
    }
    assert other.witness_checkpoint("nobody", witness) == []  # an empty chain: nothing to write
    assert witness.tenants() == ["acme", "globex"]
    assert make_log(bytes(32)).verify_witnessed("acme", witness)  # another key: refused


def test_the_async_twins(
    backend_server: PgServer | RedisServer, make_log: Any, tmp_path: Path
) -> None:
    sync = make_log()
    fill(sync, 4)
    place = sync.schema if isinstance(sync, PostgresAuditLog) else sync.prefix
    witness = FileWitness(tmp_path / "w.jsonl")

    async def run(log: Any) -> None:
        assert log.is_async
        await log.arecord("acme", [("put", ("a",), "x")])
        assert await log.awitness_checkpoint("acme", witness) == []
        assert witness.latest("acme").seq == 5  # type: ignore[union-attr]
        await log.arecord("acme", [("put", ("a",), "y")])
        point = await log.acheckpoint("acme")
        assert point.seq == 6 and (await log.acheckpoint_all())[0].point == point.point
        assert await log.averify("acme", since=witness.latest("acme")) == []
        assert await log.averify_witnessed("acme", witness, full=True) == []
        assert await log.asign_head("acme") == []  # signed already
        with pytest.raises(ConfigurationError, match="use a-methods"):
            log.checkpoint("acme")

    async def main() -> None:
        if isinstance(backend_server, PgServer):
            async with AsyncConnectionPool(
                backend_server.url, min_size=1, max_size=2, open=False
            ) as pool:
                await run(PostgresAuditLog(pool, schema=place, key=KEY))
            return
        client: Any = (
            redis.asyncio.RedisCluster.from_url(backend_server.url)
            if backend_server.cluster
            else redis.asyncio.Redis.from_url(backend_server.url)
        )
        try:
            await run(RedisAuditLog(client, prefix=place, key=KEY))
        finally:
            await client.aclose()

    asyncio.run(main())
    assert sync.verify_witnessed("acme", witness) == []


def test_an_unkeyed_log_signs_nothing(make_log: Any) -> None:
    log = make_log(None)
    fill(log, 2)
    point = log.checkpoint("acme")
    assert point.mac is None and point.key_id is None
    with pytest.raises(ConfigurationError, match="signs no heads"):
        log.sign_head("acme")


@pytest.mark.parametrize("key", [KEY, None], ids=["keyed", "unkeyed"])
def test_upgrading_a_schema_from_unsigned_heads(
    pg: PgServer, schema: str, key: bytes | None
) -> None:
    """A log written by the previous version (audit track 1): heads without MAC."""
    entries = extend(
        EMPTY,
        unchained(
            "acme", [("put", ("a",), f"k{n}") for n in range(3)], datetime.now(UTC), None, None
        ),
        key,
    )
    with psycopg.connect(pg.url, autocommit=True) as conn:
        conn.execute(render("CREATE SCHEMA {s}", schema))
        conn.execute(render(_MIGRATIONS_TABLE, schema))
        for statement in pending("audit", AUDIT_MIGRATIONS[:1], 0, schema, None):
            conn.execute(statement.sql, statement.params)
        for e in entries:
            conn.execute(
                render(
                    "INSERT INTO {s}.audit_log VALUES (%s, %s, %s, NULL, NULL, %s, %s, %s, %s)",
                    schema,
                ),
                (e.tenant, e.seq, e.at, e.operation, e.namespace_text, e.key, e.hash),
            )
        conn.execute(
            render("INSERT INTO {s}.audit_heads VALUES ('acme', 3, %s)", schema),
            (entries[-1].hash,),
        )
    with ConnectionPool(pg.url, min_size=1, max_size=2, kwargs={"autocommit": True}) as pool:
        log = PostgresAuditLog(pool, schema=schema, key=key)
        log.setup()  # migration 2: the head columns
        if key is None:
            assert log.verify("acme") == [] and log.checkpoint("acme").seq == 3
            return
        assert [p.reason[:30] for p in log.verify("acme")] == ["the chain's head is not signed"]
        log.record("acme", [("put", ("a",), "k3")])  # the head stays unsigned
        assert "not signed" in log.verify("acme")[0].reason
        assert log.sign_head("acme") == []
        assert log.verify("acme") == [] and log.checkpoint("acme").seq == 4
        assert log.sign_head("acme") == []  # once is enough


def test_sign_head_refuses_a_chain_that_does_not_verify(make_log: Any) -> None:
    log = make_log()
    fill(log, 3)
    if isinstance(log, PostgresAuditLog):
        with psycopg.connect(log._runner.source.conninfo, autocommit=True) as conn:  # type: ignore[union-attr]
            conn.execute(render("UPDATE {s}.audit_log SET key = 'x' WHERE seq = 2", log.schema))
            conn.execute(render("UPDATE {s}.audit_heads SET mac = NULL", log.schema))
    else:
        insider = RedisInsider(log._runner.client, log)  # type: ignore[union-attr]
        entry = log.entries("acme")[1]
        insider.rewrite([replace(entry, key="x")])
        log._runner.client.hdel(log.keys("acme")[1], "mac")  # type: ignore[union-attr]
    problems = log.sign_head("acme")
    assert any("hash does not follow" in p.reason for p in problems)
    assert any("not signed" in p.reason for p in problems)

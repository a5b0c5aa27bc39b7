"""The PostgreSQL audit log: concurrent writers chain in order; tampering is found."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from langmem_prod.compliance import AuditLog, PostgresAuditLog
from langmem_prod.compliance._chain import EMPTY, extend
from langmem_prod.errors import AuditChainError, BackendError, ConfigurationError, InvalidInputError
from tests.compliance.helpers import (
    KEY,
    WRITERS,
    assert_every_event_once,
    awrite_concurrently,
    write_concurrently,
)
from tests.conftest import PgServer


@pytest.fixture
def pool(pg: PgServer) -> Iterator[ConnectionPool]:
    with ConnectionPool(pg.url, max_size=8, kwargs={"autocommit": True}) as made:
        yield made


@pytest.fixture(params=["unkeyed", "keyed"])
def audit(request: pytest.FixtureRequest, pool: ConnectionPool, schema: str) -> PostgresAuditLog:
    log = PostgresAuditLog(pool, schema=schema, key=KEY if request.param == "keyed" else None)
    log.setup()
    log.setup()  # idempotent
    return log


def sql(pg: PgServer, schema: str, statement: str) -> None:
    with psycopg.connect(pg.url, autocommit=True) as conn:
        for part in statement.split(";"):
            conn.execute(part.replace("{s}", f'"{schema}"'))


def fill(audit: PostgresAuditLog) -> None:
    def write(n: int) -> None:
        audit.record(
            "acme",
            [("put", ("notes", str(n)), f"k{n}"), ("get", ("notes",), None)],
            agent="bot",
            user="ada",
        )

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(write, range(12)))
    audit.record("globex", [("delete", ("x",), "k")])


def test_concurrent_writers_make_one_intact_chain(audit: PostgresAuditLog) -> None:
    fill(audit)
    entries = audit.entries("acme")
    assert [e.seq for e in entries] == list(range(1, 25))
    assert audit.verify("acme") == [] and audit.verify("globex") == []
    assert {e.operation for e in entries} == {"put", "get"} and entries[0].agent == "bot"


def test_four_writers_never_fork_the_chain(audit: PostgresAuditLog, pool: ConnectionPool) -> None:
    logs = [PostgresAuditLog(pool, schema=audit.schema, key=audit._key) for _ in range(WRITERS)]
    write_concurrently(logs, "acme")
    assert_every_event_once(audit.entries("acme"))
    assert audit.verify("acme") == []


@pytest.mark.parametrize(
    ("tamper", "seq", "reason"),
    [
        (
            "UPDATE {s}.audit_log SET operation = 'get' WHERE tenant_id = 'acme' AND seq = 3",
            3,
            "hash does not follow",
        ),
        (
            "UPDATE {s}.audit_log SET key = 'other' WHERE tenant_id = 'acme' AND seq = 7",
            7,
            "hash does not follow",
        ),
        (
            "DELETE FROM {s}.audit_log WHERE tenant_id = 'acme' AND seq = 5",
            6,
            "sequence jumps from 4 to 6",
        ),
        (
            "UPDATE {s}.audit_log SET seq = -2 WHERE tenant_id = 'acme' AND seq = 2;"
            "UPDATE {s}.audit_log SET seq = 2 WHERE tenant_id = 'acme' AND seq = 4;"
            "UPDATE {s}.audit_log SET seq = 4 WHERE tenant_id = 'acme' AND seq = -2",
            2,
            "hash does not follow",
        ),
        (
            "DELETE FROM {s}.audit_log WHERE tenant_id = 'acme' AND seq = 24",
            24,
            "last entries were removed",
        ),
        (
            "DELETE FROM {s}.audit_heads WHERE tenant_id = 'acme'",
            24,
            "head is missing",
        ),
        (
            "INSERT INTO {s}.audit_log SELECT tenant_id, 25, at, agent, user_id, operation,"
            " namespace, key, hash FROM {s}.audit_log WHERE tenant_id = 'acme' AND seq = 24",
            25,
            "entries after the chain's head",
        ),
    ],
    ids=[
        "altered-operation",
        "altered-key",
        "removed",
        "reordered",
        "truncated",
        "head-deleted",
        "forged-tail",
    ],
)
def test_tampering_is_found(
    audit: PostgresAuditLog, pg: PgServer, tamper: str, seq: int, reason: str
) -> None:
    fill(audit)
    sql(pg, audit.schema, tamper)
    problems = audit.verify("acme")
    assert any(p.seq == seq and reason in p.reason for p in problems), problems
    assert audit.verify("globex") == []  # other tenants' chains are untouched


def test_a_full_rewrite_is_caught_only_by_the_keyed_chain(
    pool: ConnectionPool, pg: PgServer, schema: str
) -> None:
    keyed = PostgresAuditLog(pool, schema=schema, key=KEY)
    keyed.setup()
    fill(keyed)
    # Someone with write access alters entry 3 and recomputes every hash and the head.
    forged = [replace(e, operation="get") if e.seq == 3 else e for e in keyed.entries("acme")]
    rewritten = extend(EMPTY, forged)
    with psycopg.connect(pg.url, autocommit=True) as conn:
        for entry in rewritten:
            conn.execute(
                f'UPDATE "{schema}".audit_log SET operation = %s, hash = %s '
                "WHERE tenant_id = 'acme' AND seq = %s",
                (entry.operation, entry.hash, entry.seq),
            )
        conn.execute(
            f'UPDATE "{schema}".audit_heads SET hash = %s WHERE tenant_id = %s',
            (rewritten[-1].hash, "acme"),
        )
    assert PostgresAuditLog(pool, schema=schema).verify("acme") == []  # a consistent chain
    problems = keyed.verify("acme")
    assert [p.seq for p in problems if "hash does not follow" in p.reason] == list(range(1, 25))
    assert PostgresAuditLog(pool, schema=schema, key=bytes(32)).verify("globex")  # wrong key


def test_a_headless_chain_is_never_restarted(audit: PostgresAuditLog, pg: PgServer) -> None:
    audit.record("acme", [("put", ("a",), "k")])
    sql(pg, audit.schema, "DELETE FROM {s}.audit_heads WHERE tenant_id = 'acme'")
    refusal = (
        pytest.raises(AuditChainError, match="head of tenant 'acme' is missing")
        if audit._key
        else pytest.raises(BackendError, match="audit_log_pkey")  # seq 1 is taken
    )
    with refusal:
        audit.record("acme", [("put", ("a",), "k2")])
    assert [e.seq for e in audit.entries("acme")] == [1]


def test_no_value_is_ever_recorded(audit: PostgresAuditLog, pg: PgServer) -> None:
    with psycopg.connect(pg.url) as conn:
        columns = [
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
                "AND table_name = 'audit_log'",
                (audit.schema,),
            )
        ]
    assert "value" not in columns and {"operation", "namespace", "key", "hash"} <= set(columns)


def test_verifying_while_others_write_reports_nothing(audit: PostgresAuditLog) -> None:
    audit.record("acme", [("put", ("a",), "k0")])
    stop = False

    def write() -> None:
        n = 0
        while not stop:
            n += 1
            audit.record("acme", [("put", ("a",), f"k{n}")])

    with ThreadPoolExecutor(2) as pool:
        writers = [pool.submit(write) for _ in range(2)]
        try:
            reports = [audit.verify("acme") for _ in range(40)]
        finally:
            stop = True
        for writer in writers:
            writer.result()
    assert all(report == [] for report in reports), [r for r in reports if r][:1]
    assert audit.verify("acme") == []


@pytest.mark.parametrize("key", [None, KEY], ids=["unkeyed", "keyed"])
async def test_the_async_twin(pg: PgServer, schema: str, key: bytes | None) -> None:
    async with AsyncConnectionPool(pg.url, max_size=4, open=False) as apool:
        logs = [PostgresAuditLog(apool, schema=schema, key=key) for _ in range(WRITERS)]
        audit = logs[0]
        assert isinstance(audit, AuditLog) and audit.is_async
        await audit.asetup()
        await awrite_concurrently(logs, "acme")
        assert_every_event_once(await audit.aentries("acme"))
        assert await audit.averify("acme") == []
        with pytest.raises(ConfigurationError, match="use a-methods"):
            audit.verify("acme")


def test_bad_input_is_refused(audit: PostgresAuditLog, pool: ConnectionPool) -> None:
    with pytest.raises(InvalidInputError, match="tenant id"):
        audit.record("a{b}", [("put", ("a",), "k")])
    with pytest.raises(InvalidInputError, match="audit event"):
        audit.record("acme", [("put", "notes", "k")])  # type: ignore[list-item]
    with pytest.raises(InvalidInputError, match="audit event"):
        audit.record("acme", [("put", ("a.b",), "k")])
    with pytest.raises(ConfigurationError, match="at least 32 random bytes"):
        PostgresAuditLog(pool, key=b"short")
    assert audit.entries("acme") == []


async def test_a_sync_log_refuses_a_methods(audit: PostgresAuditLog) -> None:
    with pytest.raises(ConfigurationError, match="use sync methods"):
        await audit.arecord("acme", [("put", ("a",), "k")])

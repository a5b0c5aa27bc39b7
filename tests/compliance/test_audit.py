"""The PostgreSQL audit log: concurrent writers chain in order; tampering is found."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from langmem_prod.compliance import PostgresAuditLog
from tests.conftest import PgServer


@pytest.fixture
def audit(pg: PgServer, schema: str) -> Iterator[PostgresAuditLog]:
    with ConnectionPool(pg.url, max_size=8, kwargs={"autocommit": True}) as pool:
        log = PostgresAuditLog(pool, schema=schema)
        log.setup()
        log.setup()  # idempotent
        yield log


def sql(pg: PgServer, schema: str, statement: str) -> None:
    with psycopg.connect(pg.url, autocommit=True) as conn:
        for part in statement.split(";"):
            conn.execute(part.replace("{s}", f'"{schema}"'))  # type: ignore[arg-type]


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
    ],
    ids=["altered-operation", "altered-key", "removed", "reordered", "truncated"],
)
def test_tampering_is_found(
    audit: PostgresAuditLog, pg: PgServer, tamper: str, seq: int, reason: str
) -> None:
    fill(audit)
    sql(pg, audit.schema, tamper)
    problems = audit.verify("acme")
    assert any(p.seq == seq and reason in p.reason for p in problems), problems
    assert audit.verify("globex") == []  # other tenants' chains are untouched


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

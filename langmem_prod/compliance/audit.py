"""The audit log in PostgreSQL: append-only, one hash chain per tenant, and its verifier.

Rules:
- `record` appends entries in one round trip: each statement advances the tenant's chain
  head (locking it, so concurrent writers chain in order) and inserts the entry with the
  hash computed by the database from the previous hash and the entry's payload;
- entries hold who, what operation, which namespace and key, and when: never values;
- `verify` reads a tenant's chain in order and returns every break (altered, removed or
  reordered entries); the chain head also catches a truncated tail.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from datetime import UTC, datetime
from typing import Any

from psycopg import Connection
from psycopg_pool import ConnectionPool

from langmem_prod.compliance._chain import GENESIS, AuditEntry, Problem, verify_chain
from langmem_prod.errors import ConfigurationError
from langmem_prod.store._retry import RetryPolicy
from langmem_prod.store.postgres._base import DEFAULT_SCHEMA
from langmem_prod.store.postgres._driver import SyncRunner
from langmem_prod.store.postgres._effects import Execute
from langmem_prod.store.postgres._schema import Migration, track_setup_gen
from langmem_prod.store.postgres._sql import Statement, render

AUDIT_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "audit log with a hash chain per tenant",
        (
            """CREATE TABLE {s}.audit_heads (
                tenant_id text COLLATE "C" PRIMARY KEY,
                seq bigint NOT NULL,
                hash bytea NOT NULL)""",
            """CREATE TABLE {s}.audit_log (
                tenant_id text COLLATE "C" NOT NULL,
                seq bigint NOT NULL,
                at timestamptz NOT NULL,
                agent text,
                user_id text,
                operation text NOT NULL,
                namespace text NOT NULL,
                key text,
                hash bytea NOT NULL,
                PRIMARY KEY (tenant_id, seq))""",
        ),
    ),
)
_APPEND = """
WITH head AS (
  INSERT INTO {s}.audit_heads AS h (tenant_id, seq, hash)
  VALUES (%(t)s, 1, sha256(%(genesis)s || %(payload)s))
  ON CONFLICT (tenant_id) DO UPDATE SET seq = h.seq + 1, hash = sha256(h.hash || %(payload)s)
  RETURNING seq, hash
)
INSERT INTO {s}.audit_log (tenant_id, seq, at, agent, user_id, operation, namespace, key, hash)
SELECT %(t)s, head.seq, %(at)s, %(agent)s, %(user)s, %(op)s, %(ns)s, %(key)s, head.hash
FROM head"""
# The chain and its head in one statement, so one snapshot: a writer appending meanwhile
# is either wholly in it (entry and head) or not at all. A NULL head: no head row.
_READ = """
SELECT l.seq, l.at, l.agent, l.user_id, l.operation, l.namespace, l.key, l.hash, h.seq, h.hash
FROM (SELECT 1) one
LEFT JOIN {s}.audit_heads h ON h.tenant_id = %(t)s
LEFT JOIN {s}.audit_log l ON l.tenant_id = %(t)s
ORDER BY l.seq"""
Event = tuple[str, tuple[str, ...], str | None]  # operation, namespace, key


class PostgresAuditLog:
    """Tamper-evident audit entries per tenant, in the store's schema.

    Example:
        >>> from psycopg_pool import ConnectionPool
        >>> from langmem_prod.embedded import embedded_postgres
        >>> with embedded_postgres() as url, ConnectionPool(url) as pool:
        ...     audit = PostgresAuditLog(pool)
        ...     audit.setup()
        ...     audit.record("acme", [("put", ("notes",), "k1")], agent="bot", user="ada")
        ...     audit.verify("acme")
        []
    """

    def __init__(
        self,
        conn: Connection[Any] | ConnectionPool[Any],
        *,
        schema: str = DEFAULT_SCHEMA,
        retry: RetryPolicy | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if not isinstance(conn, Connection | ConnectionPool):
            raise ConfigurationError("the audit log needs a psycopg Connection or ConnectionPool")
        self.schema = schema
        self._runner = SyncRunner(conn, schema, None, retry or RetryPolicy())
        self._clock = clock or (lambda: datetime.now(UTC))

    def setup(self) -> None:
        """Create or upgrade the audit tables (idempotent)."""
        self._runner.run_in_transaction(
            lambda: track_setup_gen(self.schema, "audit", AUDIT_MIGRATIONS)
        )

    def _statement(
        self, tenant: str, event: Event, at: datetime, agent: str | None, user: str | None
    ) -> Statement:
        operation, namespace, key = event
        entry = AuditEntry(tenant, 0, at, agent, user, operation, namespace, key)
        params = {
            "t": tenant,
            "genesis": GENESIS,
            "payload": entry.payload(),
            "at": at,
            "agent": agent,
            "user": user,
            "op": operation,
            "ns": ".".join(namespace),
            "key": key,
        }
        return Statement(render(_APPEND, self.schema), params)

    def record(
        self,
        tenant: str,
        events: Sequence[Event],
        *,
        agent: str | None = None,
        user: str | None = None,
    ) -> None:
        """Append events (operation, namespace, key) to the tenant's chain, one round trip."""
        if not events:
            return
        at = self._clock()
        statements = tuple(self._statement(tenant, e, at, agent, user) for e in events)

        def gen() -> Generator[Execute, Any, None]:
            yield Execute(statements)

        self._runner.run(gen())

    def _read(self, tenant: str) -> tuple[list[AuditEntry], tuple[int, bytes] | None]:
        """The tenant's entries in order, and its chain head, from one snapshot."""

        def gen() -> Generator[Execute, Any, list[tuple[Any, ...]]]:
            (rows,) = yield Execute((Statement(render(_READ, self.schema), {"t": tenant}),))
            return rows  # type: ignore[no-any-return]

        rows = self._runner.run(gen())
        head = None if rows[0][8] is None else (int(rows[0][8]), bytes(rows[0][9]))
        entries = [
            AuditEntry(
                tenant, seq, at, agent, user, op, tuple(ns.split(".")) if ns else (), key, bytes(h)
            )
            for seq, at, agent, user, op, ns, key, h, _, _ in rows
            if seq is not None
        ]
        return entries, head

    def entries(self, tenant: str) -> list[AuditEntry]:
        """The tenant's entries, in order."""
        return self._read(tenant)[0]

    def verify(self, tenant: str) -> list[Problem]:
        """Every break in the tenant's chain; [] when nothing was altered, removed or moved."""
        entries, head = self._read(tenant)
        problems = verify_chain(entries)
        if head is not None and (not entries or (entries[-1].seq, entries[-1].hash) != head):
            problems.append(Problem(head[0], "the chain's last entries were removed"))
        return problems

"""The audit log in PostgreSQL: append-only, one hash chain per tenant, and its verifier.

Rules:
- unkeyed, `record` appends in one round trip: each statement advances the tenant's
  chain head (locking it, so concurrent writers chain in order) and inserts the entry
  with the hash computed by the database (`sha256`) from the previous hash and the
  entry's payload;
- keyed (`key=`), the HMAC and the head's MAC are computed here, because the key must
  never reach the database (and `hmac()` needs pgcrypto): one transaction locks the
  head row (`FOR UPDATE`), checks its MAC (`_head`: a forged head is refused, an
  unsigned one stays unsigned), chains the entries in Python from it, then inserts them
  with the new head; concurrent writers wait on the lock, so the chain never forks;
- a head that is gone while entries remain is refused (`AuditChainError`), never
  restarted at 1;
- entries hold who, what operation, which namespace and key, and when: never values;
- a head row holds seq, hash, at and, keyed, key_id and mac (migration 2 of the "audit"
  track added the last three; heads written before it are unsigned until `sign_head`);
- `verify` reads a tenant's chain and its head in one statement (one snapshot) and
  returns every break (altered, removed or reordered entries, a truncated tail, a head
  not signed by the key). From a checkpoint at entry s it reads only the entries from
  s - 1 on (the primary key (tenant_id, seq) finds them) with the count of those before;
- checkpoints read each head with its chain's last entry in one statement, for one
  tenant or every head; positions are not needed (entries are found by seq).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection, Connection
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from langmem_prod.compliance._chain import (
    GENESIS,
    AuditEntry,
    Event,
    Head,
    check_key,
    extend,
    unchained,
)
from langmem_prod.compliance._checkpoint import Checkpoint, Tip
from langmem_prod.compliance._head import ChainHead, make_head, signs_after
from langmem_prod.compliance._log import AuditLogBase, Job
from langmem_prod.compliance._verify import Read
from langmem_prod.errors import AuditChainError
from langmem_prod.store._retry import RetryPolicy
from langmem_prod.store.postgres._base import DEFAULT_SCHEMA
from langmem_prod.store.postgres._driver import runner_for
from langmem_prod.store.postgres._effects import Execute
from langmem_prod.store.postgres._errors import SetupHint
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
    Migration(
        2,
        "signed chain heads: time, key id and MAC",
        (
            "ALTER TABLE {s}.audit_heads ADD COLUMN at timestamptz, "
            "ADD COLUMN key_id text, ADD COLUMN mac bytea",
        ),
    ),
)
_APPEND = """
WITH head AS (
  INSERT INTO {s}.audit_heads AS h (tenant_id, seq, hash, at)
  VALUES (%(t)s, 1, sha256(%(genesis)s || %(payload)s), %(at)s)
  ON CONFLICT (tenant_id) DO UPDATE
  SET seq = h.seq + 1, hash = sha256(h.hash || %(payload)s), at = %(at)s, key_id = NULL, mac = NULL
  RETURNING seq, hash
)
INSERT INTO {s}.audit_log (tenant_id, seq, at, agent, user_id, operation, namespace, key, hash)
SELECT %(t)s, head.seq, %(at)s, %(agent)s, %(user)s, %(op)s, %(ns)s, %(key)s, head.hash
FROM head"""
# Keyed: make the head row if the tenant has no chain yet (never over a headless chain),
# then lock it; the entries and the new head follow in the same transaction.
_ENSURE_HEAD = """
INSERT INTO {s}.audit_heads (tenant_id, seq, hash)
SELECT %(t)s, 0, %(genesis)s
WHERE NOT EXISTS (SELECT 1 FROM {s}.audit_log WHERE tenant_id = %(t)s)
ON CONFLICT (tenant_id) DO NOTHING"""
_LOCK_HEAD = (
    "SELECT seq, hash, at, key_id, mac FROM {s}.audit_heads WHERE tenant_id = %(t)s FOR UPDATE"
)
_INSERT = """
INSERT INTO {s}.audit_log (tenant_id, seq, at, agent, user_id, operation, namespace, key, hash)
VALUES (%(t)s, %(seq)s, %(at)s, %(agent)s, %(user)s, %(op)s, %(ns)s, %(key)s, %(hash)s)"""
_SET_HEAD = """
UPDATE {s}.audit_heads SET seq = %(seq)s, hash = %(hash)s, at = %(at)s, key_id = %(kid)s,
  mac = %(mac)s
WHERE tenant_id = %(t)s"""
# The chain (from seq `from` on) and its head in one statement, so one snapshot: a writer
# appending meanwhile is either wholly in it (entry and head) or not at all; with the
# count of the entries before `from`. A NULL head: no head row.
_READ = """
SELECT l.seq, l.at, l.agent, l.user_id, l.operation, l.namespace, l.key, l.hash,
  h.seq, h.hash, h.at, h.key_id, h.mac, b.n
FROM (SELECT count(*) AS n FROM {s}.audit_log WHERE tenant_id = %(t)s AND seq < %(from)s) b
LEFT JOIN {s}.audit_heads h ON h.tenant_id = %(t)s
LEFT JOIN {s}.audit_log l ON l.tenant_id = %(t)s AND l.seq >= %(from)s
ORDER BY l.seq"""
_FIRST = -(2**63)
_SETUP = SetupHint("the audit log", "audit.setup()", "await audit.asetup()")
# Heads with the last entry of their chain (the given tenants, or every head).
_TIPS = """
SELECT t.id, h.seq, h.hash, h.at, h.key_id, h.mac, l.seq, l.hash
FROM unnest(coalesce(%(tenants)s::text[], ARRAY(SELECT tenant_id FROM {s}.audit_heads)))
  AS t(id)
LEFT JOIN {s}.audit_heads h ON h.tenant_id = t.id
LEFT JOIN LATERAL (
  SELECT seq, hash FROM {s}.audit_log WHERE tenant_id = t.id ORDER BY seq DESC LIMIT 1
) l ON true
ORDER BY t.id"""
_SIGN_HEAD = """
UPDATE {s}.audit_heads SET at = %(at)s, key_id = %(kid)s, mac = %(mac)s
WHERE tenant_id = %(t)s AND seq = %(seq)s AND hash = %(hash)s AND mac IS NULL
RETURNING 1"""


def _entry_params(entry: AuditEntry) -> dict[str, Any]:
    return {
        "t": entry.tenant,
        "seq": entry.seq,
        "at": entry.at,
        "agent": entry.agent,
        "user": entry.user,
        "op": entry.operation,
        "ns": entry.namespace_text,
        "key": entry.key,
        "hash": entry.hash,
    }


def _head_params(tenant: str, head: ChainHead) -> dict[str, Any]:
    return {
        "t": tenant,
        "seq": head.seq,
        "hash": head.hash,
        "at": head.at,
        "kid": head.key_id,
        "mac": head.mac,
    }


def _head_from(seq: Any, hash_: Any, at: Any, kid: Any, mac: Any) -> ChainHead | None:
    if seq is None:
        return None
    return ChainHead(int(seq), bytes(hash_), at, kid, None if mac is None else bytes(mac))


def _read_from_rows(tenant: str, rows: list[tuple[Any, ...]], whole: bool) -> Read:
    entries = [
        AuditEntry(
            tenant, seq, at, agent, user, op, tuple(ns.split(".")) if ns else (), key, bytes(h)
        )
        for seq, at, agent, user, op, ns, key, h, *_ in rows
        if seq is not None
    ]
    return Read(entries, _head_from(*rows[0][8:13]), int(rows[0][13]), whole)


def _tip_from(row: tuple[Any, ...]) -> Tip:
    last = None if row[6] is None else Head(int(row[6]), bytes(row[7]))
    return Tip(row[0], _head_from(*row[1:6]), last)


class PgAuditFlows:
    """The log's operations on PostgreSQL, as generators of `Execute` effects."""

    def __init__(self, schema: str, key: bytes | None) -> None:
        self.schema, self.key = schema, key

    def _statement(self, template: str, params: dict[str, Any]) -> Statement:
        return Statement(render(template, self.schema), params)

    def setup_gen(self) -> Generator[Execute, Any, None]:
        """Create or upgrade the audit tables."""
        yield from track_setup_gen(self.schema, "audit", AUDIT_MIGRATIONS)

    def append_sql_gen(self, pending: list[AuditEntry]) -> Generator[Execute, Any, None]:
        """Unkeyed: the database chains each entry as it advances the head."""
        statements = []
        for entry in pending:
            params = _entry_params(entry)
            params.update(genesis=GENESIS, payload=entry.payload())
            statements.append(self._statement(_APPEND, params))
        yield Execute(tuple(statements))

    def append_keyed_gen(
        self, tenant: str, events: tuple[Event, ...], at: datetime, agent: Any, user: Any
    ) -> Generator[Execute, Any, None]:
        """Keyed (run in one transaction): lock the head, chain here, insert, move the head."""
        params = {"t": tenant, "genesis": GENESIS}
        _, rows = yield Execute(
            (self._statement(_ENSURE_HEAD, params), self._statement(_LOCK_HEAD, params))
        )
        head = _head_from(*rows[0]) if rows else None
        if head is None:
            raise AuditChainError(
                f"the audit chain head of tenant {tenant!r} is missing while its entries "
                "remain; run verify() and restore the head before recording more"
            )
        sign = signs_after(tenant, head, self.key)
        entries = extend(head.point, unchained(tenant, events, at, agent, user), self.key)
        statements = [self._statement(_INSERT, _entry_params(e)) for e in entries]
        new = make_head(self.key, tenant, Head(entries[-1].seq, entries[-1].hash), at, sign)
        statements.append(self._statement(_SET_HEAD, _head_params(tenant, new)))
        yield Execute(tuple(statements))

    def read_gen(self, tenant: str, since: Checkpoint | None) -> Generator[Execute, Any, Read]:
        """The tenant's entries (from the one before `since`'s) and its head, in one snapshot."""
        whole = since is None or since.seq <= 1
        start = _FIRST if whole or since is None else since.seq - 1
        (rows,) = yield Execute((self._statement(_READ, {"t": tenant, "from": start}),))
        return _read_from_rows(tenant, rows, whole)

    def tips_gen(self, tenants: Sequence[str] | None) -> Generator[Execute, Any, list[Tip]]:
        """The heads of `tenants` (None: every head) with their chains' last entries."""
        params: dict[str, Any] = {"tenants": None if tenants is None else list(tenants)}
        (rows,) = yield Execute((self._statement(_TIPS, params),))
        return [_tip_from(row) for row in rows]

    def sign_gen(
        self, tenant: str, expected: Head, head: ChainHead
    ) -> Generator[Execute, Any, bool]:
        """Store the signed `head` if the head is still `expected` and unsigned."""
        params = _head_params(tenant, head) | {"seq": expected.seq, "hash": expected.hash}
        (rows,) = yield Execute((self._statement(_SIGN_HEAD, params),))
        return bool(rows)


class PostgresAuditLog(AuditLogBase):
    """Tamper-evident audit entries per tenant, in the store's schema (sync or async).

    Pass `key` (>= 32 secret bytes kept outside the database) for an HMAC-SHA256 chain
    and signed heads that nobody without it can rewrite undetected; the same key is
    needed to verify. Checkpoints written to a `Witness` outside the database catch what
    no key can: a chain cut back to an old genuine head, or wiped.

    Example:
        >>> import os, tempfile
        >>> from psycopg_pool import ConnectionPool
        >>> from langmem_prod.compliance import FileWitness
        >>> from langmem_prod.embedded import embedded_postgres
        >>> folder = tempfile.TemporaryDirectory()
        >>> with embedded_postgres() as url, ConnectionPool(url) as pool, folder:
        ...     audit = PostgresAuditLog(pool)
        ...     audit.setup()
        ...     audit.record("acme", [("put", ("notes",), "k1")], agent="bot", user="ada")
        ...     keyed = PostgresAuditLog(pool, key=os.urandom(32))
        ...     keyed.record("globex", [("delete", ("notes",), "k1")], user="bob")
        ...     witness = FileWitness(folder.name + "/audit-witness.jsonl")
        ...     keyed.witness_checkpoint("globex", witness)  # verified, then witnessed
        ...     audit.verify("acme"), keyed.verify_witnessed("globex", witness)
        []
        ([], [])

        On an `AsyncConnectionPool`, use the a-methods: `await audit.asetup()`,
        `await audit.arecord(...)`, `await audit.averify(...)`.
    """

    _flows: PgAuditFlows

    def __init__(
        self,
        conn: Connection[Any]
        | ConnectionPool[Any]
        | AsyncConnection[Any]
        | AsyncConnectionPool[Any],
        *,
        schema: str = DEFAULT_SCHEMA,
        key: bytes | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.schema = schema
        self._key = check_key(key)
        self._flows = PgAuditFlows(schema, self._key)
        self._runner = runner_for(conn, schema, retry, owner="the audit log", setup_hint=_SETUP)
        if clock is not None:
            self._clock = clock

    def _setup_job(self) -> Job[None]:
        return Job(self._flows.setup_gen, transaction=True)

    def _append_job(
        self, tenant: str, events: tuple[Event, ...], at: datetime, agent: Any, user: Any
    ) -> Job[None]:
        if self._key is not None:
            flows = self._flows
            return Job(lambda: flows.append_keyed_gen(tenant, events, at, agent, user), True)
        pending = unchained(tenant, events, at, agent, user)
        return Job(lambda: self._flows.append_sql_gen(pending))

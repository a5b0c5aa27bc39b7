"""Insiders with raw write access to the audit log's storage, but not its key.

On PostgreSQL the insider is a LOGIN role without SUPERUSER or BYPASSRLS, granted only
SELECT, INSERT, UPDATE and DELETE on the two audit tables (a DBA's helper, a compromised
migration tool). On Redis it is a client sending raw commands to the audit keys. Each
insider changes rows and streams directly, never through the log.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import psycopg
import redis
from psycopg import sql

from langmem_prod.compliance import AuditEntry, PostgresAuditLog, RedisAuditLog
from langmem_prod.compliance._chain import EMPTY, Head, extend
from langmem_prod.store.redis._driver import close_client
from tests.conftest import PgServer, RedisServer


class PgInsider:
    """Raw SQL on the audit tables, as a role granted only DML on them."""

    def __init__(self, conn: psycopg.Connection[Any], schema: str) -> None:
        self.conn, self.schema = conn, schema

    def _sql(self, text: str, *params: Any) -> list[tuple[Any, ...]]:
        query = sql.SQL(text).format(s=sql.Identifier(self.schema))
        cursor = self.conn.execute(query, params)
        return cursor.fetchall() if cursor.description else []

    def head(self, tenant: str) -> Any:
        rows = self._sql(
            "SELECT seq, hash, at, key_id, mac FROM {s}.audit_heads WHERE tenant_id = %s", tenant
        )
        return rows[0] if rows else None

    def put_head(self, tenant: str, raw: Any) -> None:
        self._sql("DELETE FROM {s}.audit_heads WHERE tenant_id = %s", tenant)
        self._sql(
            "INSERT INTO {s}.audit_heads (tenant_id, seq, hash, at, key_id, mac) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            tenant,
            *raw,
        )

    def move_head(self, tenant: str, to: Head, *, strip_mac: bool = False) -> None:
        """Point the head at (seq, hash), keeping its time and MAC (or removing them)."""
        self._sql(
            "UPDATE {s}.audit_heads SET seq = %s, hash = %s WHERE tenant_id = %s",
            to.seq,
            to.hash,
            tenant,
        )
        if strip_mac:
            self._sql(
                "UPDATE {s}.audit_heads SET key_id = NULL, mac = NULL WHERE tenant_id = %s", tenant
            )

    def cut(self, tenant: str, after: int) -> None:
        self._sql("DELETE FROM {s}.audit_log WHERE tenant_id = %s AND seq > %s", tenant, after)

    def delete(self, tenant: str, seq: int) -> None:
        self._sql("DELETE FROM {s}.audit_log WHERE tenant_id = %s AND seq = %s", tenant, seq)

    def wipe(self, tenant: str) -> None:
        self._sql("DELETE FROM {s}.audit_log WHERE tenant_id = %s", tenant)
        self._sql("DELETE FROM {s}.audit_heads WHERE tenant_id = %s", tenant)

    def rewrite(self, entries: list[AuditEntry]) -> None:
        """Store these entries (content and hash) in place of those with the same seq."""
        for e in entries:
            self._sql(
                "UPDATE {s}.audit_log SET operation = %s, key = %s, hash = %s "
                "WHERE tenant_id = %s AND seq = %s",
                e.operation,
                e.key,
                e.hash,
                e.tenant,
                e.seq,
            )

    def add(self, entries: list[AuditEntry]) -> None:
        for e in entries:
            self._sql(
                "INSERT INTO {s}.audit_log (tenant_id, seq, at, agent, user_id, operation, "
                "namespace, key, hash) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                e.tenant,
                e.seq,
                e.at,
                e.agent,
                e.user,
                e.operation,
                e.namespace_text,
                e.key,
                e.hash,
            )


def _fields(entry: AuditEntry) -> dict[str, str]:
    fields = {
        "seq": str(entry.seq),
        "at": entry.at_text,
        "operation": entry.operation,
        "namespace": entry.namespace_text,
        "hash": entry.hash.hex(),
    }
    extra = (("agent", entry.agent), ("user", entry.user), ("key", entry.key))
    return fields | {name: value for name, value in extra if value is not None}


class RedisInsider:
    """Raw commands on the audit keys."""

    def __init__(self, client: Any, log: RedisAuditLog) -> None:
        self.client, self.log = client, log

    def head(self, tenant: str) -> Any:
        return self.client.hgetall(self.log.keys(tenant)[1]) or None

    def put_head(self, tenant: str, raw: Any) -> None:
        key = self.log.keys(tenant)[1]
        self.client.delete(key)
        self.client.hset(key, mapping=raw)

    def move_head(self, tenant: str, to: Head, *, strip_mac: bool = False) -> None:
        key = self.log.keys(tenant)[1]
        self.client.hset(key, mapping={"seq": to.seq, "hash": to.hash.hex()})
        if strip_mac:
            self.client.hdel(key, "kid", "mac")

    def _ids(self, tenant: str) -> dict[int, bytes]:
        rows = self.client.xrange(self.log.keys(tenant)[0])
        return {int(fields[b"seq"]): sid for sid, fields in rows}

    def cut(self, tenant: str, after: int) -> None:
        doomed = [sid for seq, sid in self._ids(tenant).items() if seq > after]
        if doomed:
            self.client.xdel(self.log.keys(tenant)[0], *doomed)

    def delete(self, tenant: str, seq: int) -> None:
        self.client.xdel(self.log.keys(tenant)[0], self._ids(tenant)[seq])

    def wipe(self, tenant: str) -> None:
        self.client.delete(*self.log.keys(tenant))

    def rewrite(self, entries: list[AuditEntry]) -> None:
        """Rebuild the stream with these entries in place, keeping every stream id."""
        tenant = entries[0].tenant
        by_seq = {e.seq: e for e in entries}
        stream = self.log.keys(tenant)[0]
        rows = self.client.xrange(stream)
        self.client.delete(stream)
        for sid, fields in rows:
            seq = int(fields[b"seq"])
            self.client.xadd(stream, _fields(by_seq[seq]) if seq in by_seq else fields, id=sid)

    def add(self, entries: list[AuditEntry]) -> None:
        for e in entries:
            self.client.xadd(self.log.keys(e.tenant)[0], _fields(e))


Insider = PgInsider | RedisInsider


def forged_chain(entries: list[AuditEntry], **changes: Any) -> list[AuditEntry]:
    """The chain an insider without the key computes after changing entry 2: SHA-256 links."""
    changed = [replace(e, **changes) if e.seq == 2 else e for e in entries]
    return extend(EMPTY, changed)


@contextmanager
def pg_insider(pg: PgServer, schema: str) -> Iterator[PgInsider]:
    """A NOSUPERUSER, NOBYPASSRLS login role with DML on the audit tables only."""
    role = f"lm_insider_{uuid.uuid4().hex[:10]}"
    ident = sql.Identifier(role)
    with psycopg.connect(pg.url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOBYPASSRLS").format(ident))
        admin.execute(
            sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(schema), ident)
        )
        for table in ("audit_log", "audit_heads"):
            admin.execute(
                sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON {}.{} TO {}").format(
                    sql.Identifier(schema), sql.Identifier(table), ident
                )
            )
    try:
        with psycopg.connect(pg.url, user=role, autocommit=True) as conn:
            row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            assert row.fetchone() == (False,)
            yield PgInsider(conn, schema)
    finally:
        with psycopg.connect(pg.url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP OWNED BY {}").format(ident))
            admin.execute(sql.SQL("DROP ROLE {}").format(ident))


def redis_client(rs: RedisServer) -> Any:
    return redis.RedisCluster.from_url(rs.url) if rs.cluster else redis.Redis.from_url(rs.url)


def close(client: Any) -> None:
    close_client(client)


def insider_for(log: PostgresAuditLog | RedisAuditLog) -> str:
    return "postgres" if isinstance(log, PostgresAuditLog) else "redis"

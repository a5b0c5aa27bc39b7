"""Chat histories on PostgreSQL: schema, statements and flows, with no I/O.

Rules:
- a conversation is a row of `chat_sessions` (tenant, session, user, sequence counter,
  expiry, state) and its messages are rows of `chat_messages` keyed by (tenant,
  session, seq); a conversation is deleted with its messages in one statement (no
  foreign key: its check would cost an append a tenth of its time);
- an append is one statement: it upserts the session (locking its row, so concurrent
  appends get consecutive sequence numbers), trims to `max_messages`, and inserts the
  messages; it carries an append id, so a retry after a lost reply inserts nothing twice;
- the TTL is the conversation's: every write sets `expires_at` anew; reads skip an
  expired conversation; a write to an expired conversation starts it afresh (its old
  messages fall below `floor_seq`, and are deleted); `sweep_gen` deletes expired ones;
- the clock is a parameter (never the server's `now()`);
- a conversation of a tenant runs its statements after `set_config('langmem.tenant', ...)`
  in the same transaction (one pipeline), so row-level security lets them through for a
  role without BYPASSRLS, and no pooled connection keeps the setting.
"""

from __future__ import annotations

import uuid
from collections.abc import Generator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from langmem_prod.history._messages import Window
from langmem_prod.store.postgres._effects import Execute
from langmem_prod.store.postgres._rls import in_tenant, policy_statements
from langmem_prod.store.postgres._schema import Migration, track_setup_gen
from langmem_prod.store.postgres._sql import Statement, render

HISTORY_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "chat sessions and messages",
        (
            """CREATE TABLE {s}.chat_sessions (
                tenant_id text COLLATE "C" NOT NULL,
                session_id text COLLATE "C" NOT NULL,
                user_id text,
                next_seq bigint NOT NULL,
                floor_seq bigint NOT NULL DEFAULT 0,
                last_append uuid,
                state bytea,
                created_at timestamptz NOT NULL,
                updated_at timestamptz NOT NULL,
                expires_at timestamptz,
                PRIMARY KEY (tenant_id, session_id))""",
            "CREATE INDEX chat_sessions_expires_at_idx ON {s}.chat_sessions (expires_at) "
            "WHERE expires_at IS NOT NULL",
            """CREATE TABLE {s}.chat_messages (
                tenant_id text COLLATE "C" NOT NULL,
                session_id text COLLATE "C" NOT NULL,
                seq bigint NOT NULL,
                user_id text,
                message bytea NOT NULL,
                created_at timestamptz NOT NULL,
                PRIMARY KEY (tenant_id, session_id, seq))""",
        ),
    ),
    Migration(
        2,
        "row-level security on chat sessions and messages",
        (
            *policy_statements("chat_sessions", "tenant_id"),
            *policy_statements("chat_messages", "tenant_id"),
        ),
    ),
)

_APPEND = """
WITH s AS (
  INSERT INTO {s}.chat_sessions AS cs
    (tenant_id, session_id, user_id, next_seq, last_append, created_at, updated_at, expires_at)
  VALUES (%(t)s, %(sid)s, %(u)s, %(n)s, %(aid)s, %(now)s, %(now)s, %(exp)s)
  ON CONFLICT (tenant_id, session_id) DO UPDATE SET
    next_seq = cs.next_seq + %(n)s,
    floor_seq = CASE WHEN cs.expires_at <= %(now)s THEN cs.next_seq ELSE cs.floor_seq END,
    user_id = coalesce(EXCLUDED.user_id, cs.user_id),
    last_append = EXCLUDED.last_append,
    updated_at = EXCLUDED.updated_at,
    expires_at = EXCLUDED.expires_at
  WHERE cs.last_append IS DISTINCT FROM EXCLUDED.last_append
  RETURNING next_seq, greatest(floor_seq, next_seq - %(max)s) AS keep_above
), trimmed AS (
  -- a scalar bound, so the primary key's range scan finds only the rows to delete
  DELETE FROM {s}.chat_messages m
  WHERE m.tenant_id = %(t)s AND m.session_id = %(sid)s AND m.seq <= (SELECT keep_above FROM s)
)
INSERT INTO {s}.chat_messages (tenant_id, session_id, seq, user_id, message, created_at)
SELECT %(t)s, %(sid)s, s.next_seq - %(n)s + m.ord, %(u)s, m.message, %(now)s
FROM s, unnest(%(msgs)s::bytea[]) WITH ORDINALITY AS m(message, ord)
WHERE s.next_seq - %(n)s + m.ord > s.keep_above
"""

_FROM_LIVE = """FROM {s}.chat_sessions s JOIN {s}.chat_messages m
  ON m.tenant_id = s.tenant_id AND m.session_id = s.session_id AND m.seq > s.floor_seq
WHERE s.tenant_id = %(t)s AND s.session_id = %(sid)s
  AND (s.expires_at IS NULL OR s.expires_at > %(now)s)"""
_READ_ALL = "SELECT m.message " + _FROM_LIVE + " ORDER BY m.seq"
_READ_PAGE = _READ_ALL + " LIMIT %(limit)s OFFSET %(offset)s"
_READ_LAST = (
    "SELECT message FROM (SELECT m.seq, m.message "
    + _FROM_LIVE
    + " ORDER BY m.seq DESC LIMIT %(last)s) t ORDER BY seq"
)
_READ_STATE = """SELECT state FROM {s}.chat_sessions
WHERE tenant_id = %(t)s AND session_id = %(sid)s
  AND (expires_at IS NULL OR expires_at > %(now)s)"""
_SAVE_STATE = """
INSERT INTO {s}.chat_sessions AS cs
  (tenant_id, session_id, user_id, next_seq, state, created_at, updated_at, expires_at)
VALUES (%(t)s, %(sid)s, %(u)s, 0, %(state)s, %(now)s, %(now)s, %(exp)s)
ON CONFLICT (tenant_id, session_id) DO UPDATE SET
  floor_seq = CASE WHEN cs.expires_at <= %(now)s THEN cs.next_seq ELSE cs.floor_seq END,
  user_id = coalesce(EXCLUDED.user_id, cs.user_id),
  state = EXCLUDED.state,
  updated_at = EXCLUDED.updated_at,
  expires_at = EXCLUDED.expires_at
"""
_CLEAR = """
WITH s AS (DELETE FROM {s}.chat_sessions WHERE tenant_id = %(t)s AND session_id = %(sid)s)
DELETE FROM {s}.chat_messages WHERE tenant_id = %(t)s AND session_id = %(sid)s"""
_SWEEP = """
WITH gone AS (
  DELETE FROM {s}.chat_sessions WHERE (tenant_id, session_id) IN (
    SELECT tenant_id, session_id FROM {s}.chat_sessions
    WHERE expires_at <= %(now)s LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
  RETURNING tenant_id, session_id
), messages AS (
  DELETE FROM {s}.chat_messages m USING gone
  WHERE m.tenant_id = gone.tenant_id AND m.session_id = gone.session_id
)
SELECT count(*) FROM gone"""
SWEEP_BATCH = 1000


@dataclass(frozen=True, slots=True)
class PgConversation:
    """One conversation on PostgreSQL: where it lives and how it is written."""

    schema: str
    tenant_id: str
    session_id: str
    user_id: str | None
    ttl: float | None
    max_messages: int | None

    def _params(self, now: datetime) -> dict[str, Any]:
        expires = now + timedelta(seconds=self.ttl) if self.ttl is not None else None
        return {
            "t": self.tenant_id,
            "sid": self.session_id,
            "u": self.user_id,
            "now": now,
            "exp": expires,
        }

    def append_gen(self, blobs: list[bytes], now: datetime) -> Generator[Execute, Any, None]:
        """Append stored messages in one statement (safe to retry)."""
        if not blobs:
            return
        params = self._params(now) | {
            "n": len(blobs),
            "aid": uuid.uuid4(),
            "max": self.max_messages,
            "msgs": blobs,
        }
        yield from self._execute(Statement(render(_APPEND, self.schema), params))

    def read_gen(
        self, window: Window, now: datetime, *, with_state: bool = False
    ) -> Generator[Execute, Any, tuple[list[bytes], bytes | None]]:
        """Read stored messages (oldest first) and, when asked, the state: one round trip."""
        params = {"t": self.tenant_id, "sid": self.session_id, "now": now}
        if window.last is not None:
            sql = _READ_LAST
            params["last"] = window.last
        elif window.offset or window.limit is not None:
            sql = _READ_PAGE
            params |= {"limit": window.limit, "offset": window.offset}
        else:
            sql = _READ_ALL
        statements = [Statement(render(sql, self.schema), params)]
        if with_state:
            statements.append(Statement(render(_READ_STATE, self.schema), params))
        results = yield from self._execute(*statements)
        state = results[1][0][0] if with_state and results[1] else None
        return [bytes(row[0]) for row in results[0]], state

    def save_state_gen(self, blob: bytes, now: datetime) -> Generator[Execute, Any, None]:
        """Store the conversation's state (refreshes its TTL like any write)."""
        params = self._params(now) | {"state": blob}
        yield from self._execute(Statement(render(_SAVE_STATE, self.schema), params))

    def clear_gen(self) -> Generator[Execute, Any, None]:
        """Delete the conversation, its messages and its state."""
        params = {"t": self.tenant_id, "sid": self.session_id}
        yield from self._execute(Statement(render(_CLEAR, self.schema), params))

    def _execute(self, *statements: Statement) -> Generator[Execute, Any, list[Any]]:
        """Run `statements` in one round trip, in the conversation's tenant if it has one."""
        answers = yield in_tenant(self.tenant_id, statements)
        return list(answers[1 if self.tenant_id else 0 :])


def sweep_gen(schema: str, now: datetime) -> Generator[Execute, Any, int]:
    """Delete every expired conversation of `schema`, in batches; returns how many."""
    total = 0
    while True:
        params = {"now": now, "limit": SWEEP_BATCH}
        ((count,),) = (yield Execute((Statement(render(_SWEEP, schema), params),)))[0]
        deleted = int(count)
        total += deleted
        if deleted < SWEEP_BATCH:
            return total


def setup_gen(schema: str) -> Generator[Execute, Any, None]:
    """Create or upgrade the chat history tables of `schema` (in one transaction)."""
    return track_setup_gen(schema, "history", HISTORY_MIGRATIONS, rls=True)

"""After a failed round trip, bring a connection's client state back in line, or close it.

psycopg prepares a statement on its sixth run on a connection and records the name as
soon as it sends the Parse. In a pipeline whose implicit transaction an earlier statement
aborted (a quota, a value the server rejects, a statement timeout, a serialization
failure), the server skips that Parse, yet psycopg (3.3) keeps the name: every later run
of that statement on the connection, by any tenant, fails with `prepared statement
"_pg3_N" does not exist`.

Rules:
- after a failed pipeline, a connection that is open, idle, in autocommit and holds
  prepared statements is checked: one query asks which of its names the server lacks, and
  psycopg forgets them (it prepares those statements afresh, on their next runs).
  Statements that were prepared stay prepared, so one tenant's refusals cost the others
  nothing, and the check costs one round trip on the failure path only;
- a failure outside a pipeline leaves psycopg's record right (it reads the answer to each
  Parse before recording the name), so it is not checked;
- outside autocommit, psycopg's rollback of the failed transaction deallocates every
  statement on both sides, so nothing is left to check;
- a connection left busy or in pipeline mode, or whose statements cannot be checked, is
  closed: a pool replaces it, and a store on that one connection says to pass a pool;
- a connection inside a transaction (the caller's, on a single connection; or one a pool
  will roll back) is left alone: psycopg clears its cache when it is rolled back;
- `_prepared_names` is the one reach into psycopg's private state; a test fails if
  psycopg changes it, and if it ever fails at run time the connection is closed instead.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import MutableMapping
from typing import Any

from psycopg import AsyncConnection, Connection
from psycopg.pq import PipelineStatus, TransactionStatus

logger = logging.getLogger("langmem_prod.store.postgres")

# Which of the client's statement names the server does not have.
_MISSING = (
    "SELECT n FROM unnest(%s::text[]) AS n "
    "WHERE NOT EXISTS (SELECT FROM pg_prepared_statements p WHERE p.name = n)"
)


class Repair(enum.Enum):
    """What a connection needs after a failure."""

    NOTHING = "nothing"
    FORGET_MISSING = "forget the prepared statements the server lacks"
    CLOSE = "close"


def repair_for(
    *,
    closed: bool,
    autocommit: bool,
    transaction: TransactionStatus,
    pipeline: PipelineStatus,
    may_be_stale: bool,
) -> Repair:
    """The repair a connection needs after a failure, from what psycopg says of it.

    `may_be_stale`: a pipeline failed on it while psycopg held prepared statements.

    >>> idle = dict(closed=False, transaction=TransactionStatus.IDLE, pipeline=PipelineStatus.OFF)
    >>> repair_for(autocommit=True, may_be_stale=True, **idle).name
    'FORGET_MISSING'
    >>> repair_for(autocommit=False, may_be_stale=True, **idle).name
    'NOTHING'
    >>> busy = idle | {"transaction": TransactionStatus.ACTIVE}
    >>> repair_for(autocommit=True, may_be_stale=False, **busy).name
    'CLOSE'
    """
    if closed:
        return Repair.NOTHING  # a pool discards it; a store on it says so
    if pipeline != PipelineStatus.OFF or transaction == TransactionStatus.ACTIVE:
        return Repair.CLOSE
    if transaction != TransactionStatus.IDLE or not autocommit or not may_be_stale:
        return Repair.NOTHING
    return Repair.FORGET_MISSING


def _prepared_names(conn: Connection[Any] | AsyncConnection[Any]) -> MutableMapping[Any, bytes]:
    """The map psycopg keeps of a connection's prepared statements: query key -> name.

    Private to psycopg (`BaseConnection._prepared._names`, psycopg 3.1 to 3.3); raises
    `AttributeError` or `TypeError` if psycopg changes it.
    """
    names = conn._prepared._names
    if not isinstance(names, MutableMapping):
        raise TypeError(f"psycopg's prepared statements are a {type(names).__name__}")
    return names


def _plan(
    conn: Connection[Any] | AsyncConnection[Any], pipelined: bool
) -> tuple[Repair, list[str]]:
    """The repair `conn` needs, and the names psycopg holds (to ask the server about)."""
    held: list[str] = []
    unknown = False
    if pipelined:
        try:
            held = [name.decode() for name in _prepared_names(conn).values()]
        except (AttributeError, TypeError) as exc:  # a psycopg this module does not know
            logger.warning("cannot read psycopg's prepared statements (%s); closing", exc)
            unknown = True
    repair = repair_for(
        closed=conn.closed,
        autocommit=conn.autocommit,
        transaction=conn.info.transaction_status,
        pipeline=PipelineStatus(conn.pgconn.pipeline_status),
        may_be_stale=bool(held) or unknown,
    )
    if unknown and repair is Repair.FORGET_MISSING:
        repair = Repair.CLOSE
    return repair, held


def _forget(conn: Connection[Any] | AsyncConnection[Any], missing: set[str]) -> None:
    names = _prepared_names(conn)
    for key in [key for key, name in names.items() if name.decode() in missing]:
        del names[key]
    logger.info("forgot %d prepared statement(s) the server does not have", len(missing))


def _closing(exc: Exception) -> None:
    logger.warning("closing a PostgreSQL connection whose statements could not be checked: %s", exc)


def recover(conn: Connection[Any], *, pipelined: bool = True) -> None:
    """After a failure on `conn`, make its prepared statements match the server's, or close it.

    `pipelined`: whether the failure may have come from a pipeline. A check that fails
    closes the connection and raises nothing, so the caller sees the failure it is
    recovering from (an interruption during the check still propagates).
    """
    repair, held = _plan(conn, pipelined)
    if repair is Repair.FORGET_MISSING:
        try:
            rows = conn.execute(_MISSING, (held,), prepare=False).fetchall()
        except Exception as exc:
            _closing(exc)
            conn.close()
            return
        except BaseException:
            conn.close()
            raise
        if rows:
            _forget(conn, {row[0] for row in rows})
    elif repair is Repair.CLOSE:
        logger.warning("closing a PostgreSQL connection left busy by a failure")
        conn.close()


async def arecover(conn: AsyncConnection[Any], *, pipelined: bool = True) -> None:
    """The async twin of `recover`."""
    repair, held = _plan(conn, pipelined)
    if repair is Repair.FORGET_MISSING:
        try:
            rows = await (await conn.execute(_MISSING, (held,), prepare=False)).fetchall()
        except Exception as exc:
            _closing(exc)
            await conn.close()
            return
        except BaseException:
            await conn.close()
            raise
        if rows:
            _forget(conn, {row[0] for row in rows})
    elif repair is Repair.CLOSE:
        logger.warning("closing a PostgreSQL connection left busy by a failure")
        await conn.close()

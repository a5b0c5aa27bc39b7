"""Translate psycopg and pool errors into langmem_prod's errors, in this one place.

Rules:
- lost connections, shutdowns, deadlocks, serialization failures and a full connection
  table are retryable, told by SQLSTATE: psycopg's error classes do not nest by SQLSTATE
  class (`SerializationFailure` is not a `TransactionRollback`), so `isinstance` on a
  class-level error misses them;
- a missing table or function means `setup()` has not run for this schema; the error
  names what lacks its tables and the call that creates them (`SetupHint`: the store's
  `store.setup()`, a chat history's `history.setup()`, ...), awaited for an async one;
- a write on a read-only connection (SQLSTATE 25006) is `ReadOnlyServerError`, not retried;
- a cancelled statement or a pool that stayed empty is a timeout, not retried (the pool
  already waited its full timeout);
- anything else from the database is a `BackendError`; other exceptions pass through.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import PoolTimeout

from langmem_prod.errors import (
    BackendError,
    BackendTimeoutError,
    BackendUnavailableError,
    LangmemError,
    QuotaExceededError,
    ReadOnlyServerError,
    SchemaNotReadyError,
)
from langmem_prod.store.postgres._schema import QUOTA_SQLSTATE


@dataclass(frozen=True, slots=True)
class SetupHint:
    """What owns some tables, and the calls that create them, for the missing-setup error.

    >>> HISTORY_SETUP.call(asynchronous=True)
    'await history.asetup()'
    """

    owner: str
    sync_call: str
    async_call: str

    def call(self, *, asynchronous: bool = False) -> str:
        """The setup call to name: the awaited one for an async connection."""
        return self.async_call if asynchronous else self.sync_call


STORE_SETUP = SetupHint("the store", "store.setup()", "await store.setup()")
HISTORY_SETUP = SetupHint("the chat history", "history.setup()", "await history.asetup()")

_NOT_SET_UP = (
    pg_errors.UndefinedTable,
    pg_errors.UndefinedFunction,
    pg_errors.InvalidSchemaName,
    pg_errors.UndefinedColumn,
)
READ_ONLY_SQLSTATE = "25006"  # read_only_sql_transaction (a standby answers it too)
_RETRYABLE_CLASSES = ("08",)  # connection exceptions
_RETRYABLE_STATES = (
    "40001",  # serialization_failure
    "40P01",  # deadlock_detected
    "40003",  # statement_completion_unknown (every effect is safe to repeat)
    "57P01",  # admin_shutdown (pg_terminate_backend, a fast shutdown)
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now (starting up)
    "53300",  # too_many_connections
)


def translate(
    exc: BaseException,
    schema: str,
    hint: SetupHint = STORE_SETUP,
    *,
    asynchronous: bool = False,
) -> BaseException:
    """Return the langmem_prod error for `exc` (or `exc` itself when it is not a driver's).

    >>> from psycopg import errors as e
    >>> error = translate(e.UndefinedTable(), "app", HISTORY_SETUP)
    >>> type(error).__name__, "call history.setup() once" in str(error)
    ('SchemaNotReadyError', True)
    """
    if isinstance(exc, LangmemError):
        return exc
    if isinstance(exc, PoolTimeout):
        return BackendTimeoutError(
            "no PostgreSQL connection came free within the pool's timeout (every connection "
            "stayed busy, or the server stopped answering); raise pool_size / pool_timeout "
            "(the pool's max_size / timeout), or find what holds the connections",
            retryable=False,
        )
    if isinstance(exc, psycopg.Error) and exc.sqlstate == QUOTA_SQLSTATE:
        return QuotaExceededError(
            f"{_first_line(exc)}; nothing was written. Delete items, or raise the tenant's "
            "max_items / max_bytes in the registry"
        )
    if isinstance(exc, _NOT_SET_UP):
        return SchemaNotReadyError(
            f"{hint.owner}'s tables in schema {schema!r} are missing or out of date "
            f"({type(exc).__name__}); call {hint.call(asynchronous=asynchronous)} once "
            "before using it"
        )
    if isinstance(exc, psycopg.Error) and exc.sqlstate == READ_ONLY_SQLSTATE:
        return ReadOnlyServerError(
            f"PostgreSQL refused a write: {_first_line(exc)}; the connection is read-only (a "
            "standby, or default_transaction_read_only is on for the role, database or "
            "connection): nothing was written, write through the primary",
            retryable=False,
        )
    if isinstance(exc, pg_errors.QueryCanceled):
        return BackendTimeoutError(
            "PostgreSQL cancelled the statement (statement_timeout or a cancel request)",
            retryable=False,
        )
    if isinstance(exc, psycopg.Error) and _retryable(exc):
        return BackendUnavailableError(f"PostgreSQL is unavailable: {_first_line(exc)}")
    if isinstance(exc, psycopg.InterfaceError):
        return BackendUnavailableError(
            f"the PostgreSQL connection is unusable ({_first_line(exc)}); pass a pool, or "
            "use from_conn_string(), so the store can reconnect",
            retryable=False,
        )
    if isinstance(exc, psycopg.Error):
        return BackendError(f"PostgreSQL rejected the operation: {_first_line(exc)}")
    return exc


def _retryable(exc: psycopg.Error) -> bool:
    """Whether `exc` is transient: a retryable SQLSTATE, or a connection lost with none.

    >>> from psycopg import errors as e
    >>> _retryable(e.SerializationFailure()), _retryable(e.AdminShutdown())
    (True, True)
    >>> _retryable(e.UniqueViolation()), _retryable(e.InterfaceError("closed"))
    (False, False)
    """
    state = exc.sqlstate
    if state is None:
        return isinstance(exc, psycopg.OperationalError)
    return state[:2] in _RETRYABLE_CLASSES or state in _RETRYABLE_STATES


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

"""Open PostgreSQL connection strings so that mistakes fail at once and say why.

A pool asked to open on a wrong URL only logs each failed attempt and, after its whole
timeout, says it got no connection. So whatever opens a pool on a URL first makes one
connection itself, within `connect_timeout`, and reads the answer:

Rules:
- a connection string that does not parse is a `ConfigurationError` at once, with no
  connection attempted;
- a server that answers and refuses (no such database or role, a wrong password, no
  `pg_hba.conf` entry) is a `ConfigurationError` at once, carrying the server's message:
  trying again cannot fix it; a server that says it is starting, stopping or full is
  `BackendUnavailableError` (retryable);
- a server that cannot be reached within `connect_timeout` is `BackendUnavailableError`
  (retryable) carrying the network's reason;
- messages never carry a password (libpq's do not; ours mask what looks like one);
- `connect_timeout` is also written into the pool's connection string, so the pool's
  later reconnections wait no longer either (libpq counts whole seconds, at least 2).
"""

from __future__ import annotations

import math
import re
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from langmem_prod.errors import BackendUnavailableError, ConfigurationError

DEFAULT_CONNECT_TIMEOUT = 5.0
_TRANSIENT = (
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "the database system is not yet accepting connections",
    "too many clients already",
    "remaining connection slots are reserved",
    "terminating connection due to administrator command",
)
_SECRET = re.compile(r"(password\s*=\s*)\S+|(://[^:/@\s]*:)[^@\s]*@", re.IGNORECASE)


def conninfo_for(conn_string: str, connect_timeout: float) -> str:
    """`conn_string` with `connect_timeout` set; a malformed one is a `ConfigurationError`.

    >>> conninfo_for("postgresql://app@db:5432/mem", 5)
    'user=app dbname=mem host=db port=5432 connect_timeout=5'
    >>> conninfo_for("host=db port", 5)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    langmem_prod.errors.ConfigurationError: the PostgreSQL connection string is malformed ...
    """
    if isinstance(connect_timeout, bool) or not isinstance(connect_timeout, int | float):
        raise ConfigurationError("connect_timeout must be a number of seconds")
    if not 0 < connect_timeout < 1e6:
        raise ConfigurationError("connect_timeout must be a positive number of seconds")
    try:
        return make_conninfo(conn_string, connect_timeout=max(2, math.ceil(connect_timeout)))
    except (psycopg.ProgrammingError, TypeError) as exc:
        raise ConfigurationError(
            f"the PostgreSQL connection string is malformed ({_mask(_first_line(exc))}); "
            "write it as postgresql://user:password@host:5432/dbname or as key=value pairs"
        ) from exc


def connect_error(exc: psycopg.Error, connect_timeout: float) -> Exception:
    """The langmem_prod error for a failed first connection.

    >>> from psycopg import OperationalError
    >>> err = connect_error(OperationalError('connection failed: ... FATAL:  database "x" '
    ...     "does not exist"), 5)
    >>> type(err).__name__, 'database "x" does not exist' in str(err)
    ('ConfigurationError', True)
    >>> type(connect_error(OperationalError("connection failed: Connection refused"), 5))
    <class 'langmem_prod.errors.BackendUnavailableError'>
    """
    text = _mask(_first_line(exc).removeprefix("connection failed: "))
    refused = "FATAL:" in text and not any(reason in text for reason in _TRANSIENT)
    if refused:
        reason = re.sub(r"\s+", " ", text.split("FATAL:", 1)[1]).strip()
        return ConfigurationError(
            f"PostgreSQL refused the connection: {reason}; check the user, password and "
            "database name in the connection string (retrying cannot help)"
        )
    return BackendUnavailableError(
        f"PostgreSQL could not be reached (connect_timeout {connect_timeout:g} s): "
        f"{text}; check the host and port, and that the server is running"
    )


def check_connection(conn_string: str, connect_timeout: float) -> str:
    """Make one connection to `conn_string` and close it; return the pool's conninfo."""
    conninfo = conninfo_for(conn_string, connect_timeout)
    try:
        psycopg.connect(conninfo, autocommit=True).close()
    except psycopg.Error as exc:
        raise connect_error(exc, connect_timeout) from exc
    return conninfo


async def acheck_connection(conn_string: str, connect_timeout: float) -> str:
    """The async twin of `check_connection`."""
    conninfo = conninfo_for(conn_string, connect_timeout)
    try:
        await (await psycopg.AsyncConnection.connect(conninfo, autocommit=True)).close()
    except psycopg.Error as exc:
        raise connect_error(exc, connect_timeout) from exc
    return conninfo


def _mask(text: str) -> str:
    return _SECRET.sub(
        lambda m: (m.group(1) or m.group(2)) + "***" + ("" if m.group(1) else "@"), text
    )


def _first_line(exc: Any) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__

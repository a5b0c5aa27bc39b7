"""The exceptions langmem_prod raises, with one root and branches by who must act.

Rules:
- every exception derives from `LangmemError`;
- a caller mistake is also a `ValueError` (`InvalidInputError` and its children), an
  invalid namespace is also LangGraph's `InvalidNamespaceError`; a sync call on an async
  store's own loop is also `asyncio.InvalidStateError`;
- a backend that cannot serve is `BackendUnavailableError` with `retryable` set;
- messages say what was wrong and what to do, and never contain stored values.

>>> from langmem_prod.errors import InvalidFilterError, LangmemError
>>> issubclass(InvalidFilterError, ValueError) and issubclass(InvalidFilterError, LangmemError)
True
"""

from __future__ import annotations

from asyncio import InvalidStateError as _AsyncioInvalidStateError

from langgraph.store.base import InvalidNamespaceError as _LangGraphInvalidNamespaceError

__all__ = [
    "AuditChainError",
    "BackendError",
    "BackendTimeoutError",
    "BackendUnavailableError",
    "ConfigurationError",
    "DecryptionError",
    "EmbeddingError",
    "FeatureUnavailableError",
    "InvalidFilterError",
    "InvalidInputError",
    "InvalidKeyError",
    "InvalidMessageError",
    "InvalidNamespaceError",
    "InvalidValueError",
    "KeyShreddedError",
    "LangmemError",
    "QuotaExceededError",
    "RateLimitedError",
    "ReadOnlyServerError",
    "SchemaNotReadyError",
    "SyncCallInEventLoopError",
    "TenantAccessError",
    "TenantExistsError",
    "TenantNotEmptyError",
    "TenantNotFoundError",
    "ValueNotSerializableError",
    "ValueTooLargeError",
]


class LangmemError(Exception):
    """Root of every exception raised by langmem_prod."""


class InvalidInputError(LangmemError, ValueError):
    """The caller passed something the store cannot accept; nothing was written."""


class InvalidNamespaceError(InvalidInputError, _LangGraphInvalidNamespaceError):
    """A namespace (or namespace pattern) breaks LangGraph's namespace rules."""


class InvalidKeyError(InvalidInputError):
    """An item key is not a non-empty string without NUL characters."""


class InvalidValueError(InvalidInputError):
    """An item value is not a JSON object the store can keep (NaN, NUL, not a mapping)."""


class ValueNotSerializableError(InvalidValueError, TypeError):
    """An item value holds something JSON cannot represent (a datetime, a set, ...)."""


class ValueTooLargeError(InvalidValueError):
    """An item value's JSON encoding is larger than the store's `max_value_bytes`."""


class InvalidMessageError(InvalidInputError):
    """A chat message cannot be stored exactly (not a BaseMessage, or holds non-JSON data)."""


class InvalidFilterError(InvalidInputError):
    """A search filter uses an unknown operator or an operand of the wrong type."""


class ConfigurationError(LangmemError, ValueError):
    """The store was configured with settings that cannot work."""


class FeatureUnavailableError(ConfigurationError):
    """The server lacks something a configured feature needs (e.g. pgvector)."""


class SchemaNotReadyError(LangmemError):
    """Tables are missing or older than this code: call the `setup()` the message names.

    It names the object whose tables are missing: `store.setup()`, `history.setup()`,
    `registry.setup()`, `audit.setup()` or `limiter.setup()` (awaited when async).
    """


class SyncCallInEventLoopError(LangmemError, RuntimeError, _AsyncioInvalidStateError):
    """A synchronous method of an async store was called from its own event loop.

    It is also an `asyncio.InvalidStateError`, what LangGraph's async stores raise there.

    >>> import asyncio
    >>> issubclass(SyncCallInEventLoopError, asyncio.InvalidStateError)
    True
    """


class EmbeddingError(LangmemError):
    """The embedding model failed or returned vectors of the wrong shape."""


class BackendError(LangmemError):
    """The database rejected an operation for a reason the caller cannot fix by retrying."""


class BackendUnavailableError(LangmemError, ConnectionError):
    """The database could not be reached or dropped the connection.

    Attributes:
        retryable: True when the same call may succeed later (the store already
            retried it with backoff before raising).
    """

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class BackendTimeoutError(BackendUnavailableError, TimeoutError):
    """The database did not answer within the configured time."""


class ReadOnlyServerError(BackendUnavailableError, BackendError):
    """The server or connection is read-only: it serves reads and refuses writes.

    Both a `BackendError` (the write was rejected) and a `BackendUnavailableError`
    (`retryable` when a failover may promote the server: a Redis replica).

    A Redis replica, a PostgreSQL standby, or `default_transaction_read_only` on the
    role, database or connection. Nothing was written; write through the primary.
    Background maintenance (access statistics, TTL refreshes, sweeps) notices it once,
    logs one warning and stops.
    """


class DecryptionError(LangmemError):
    """Stored ciphertext cannot be decrypted (altered, another owner's, or an unknown key).

    It is never answered with garbage.
    """


class KeyShreddedError(DecryptionError):
    """The tenant's data key was destroyed (crypto-shredding): its data is unreadable."""


class RateLimitedError(LangmemError):
    """A tenant went over its rate limit; `retry_after` says how many seconds to wait."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TenantNotFoundError(LangmemError, LookupError):
    """No tenant has this id in the registry."""


class TenantExistsError(InvalidInputError):
    """A tenant with this id is already registered."""


class TenantNotEmptyError(InvalidInputError):
    """A tenant cannot be deleted while it holds data or live keys; nothing was deleted."""


class TenantAccessError(LangmemError, PermissionError):
    """The tenant is suspended, or the agent is not allowed to act for it."""


class QuotaExceededError(LangmemError):
    """A write would take a tenant over its item or byte quota; nothing was written."""


class AuditChainError(LangmemError):
    """An audit chain or its witness cannot be trusted; nothing was written.

    The chain's head is gone or not signed by the log's key, a checkpoint would go back
    behind the one a witness holds, or a witness's file was truncated or replaced.
    """

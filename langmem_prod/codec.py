"""The plug point through which stored bytes are transformed, e.g. encrypted at rest.

Rules:
- a codec turns the bytes langmem_prod would store into the bytes it stores, and back;
- `context` names the owner of the bytes (e.g. tenant and session); an encrypting codec
  binds its ciphertext to it (associated data), so bytes copied to another owner fail
  to decode instead of decoding as someone else's;
- `decode` raises (never returns garbage) when the bytes were not made by `encode` with
  the same context.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Codec(Protocol):
    """Transforms stored bytes; identity when none is configured.

    Example:
        >>> class Reversed:
        ...     def encode(self, data: bytes, context: bytes) -> bytes:
        ...         return data[::-1]
        ...     def decode(self, data: bytes, context: bytes) -> bytes:
        ...         return data[::-1]
        >>> isinstance(Reversed(), Codec)
        True
    """

    def encode(self, data: bytes, context: bytes) -> bytes:
        """The bytes to store for `data`, owned by `context`."""
        ...

    def decode(self, data: bytes, context: bytes) -> bytes:
        """The original bytes of stored `data`, owned by `context`."""
        ...

"""Tenant quotas on Redis, the pure part: what is a tenant's item, what it weighs, errors.

Rules:
- an item under ("tenants", <id>, ...) belongs to tenant <id>; usage counts its live
  items and the sum of their sizes, as the Postgres trigger does;
- an item's size is the UTF-8 length of its value as PostgreSQL prints it back from
  jsonb (`value::text`), so both backends measure alike: the stored compact JSON plus a
  space after every `,` and `:` outside strings, with numbers written in exponent form
  ("1e-05") expanded as `numeric` prints them ("0.00001") and negative zero unsigned;
  key order and string escapes are the same in both texts;
- the write script refuses a batch with an error reply starting with `QUOTA_ERROR`,
  which `quota_error` turns into `QuotaExceededError` with the Postgres message;
- limits are non-negative ints, or None for unlimited.
"""

from __future__ import annotations

import re
from decimal import Decimal

from langmem_prod.errors import InvalidInputError, QuotaExceededError

QUOTA_ERROR = "LMQ01"  # as the Postgres trigger's SQLSTATE
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_EXPONENT = re.compile(r"-?\d+(?:\.\d+)?[eE][-+]?\d+")
_NEGATIVE_ZERO = re.compile(r"-0(?:\.0+)?(?![\d.eE])")


def jsonb_size(text: str) -> int:
    """The UTF-8 length of PostgreSQL's jsonb text of a compact JSON value.

    >>> jsonb_size('{"a":[1,2],"b":"x, y: z"}')  # '{"a": [1, 2], "b": "x, y: z"}'
    29
    >>> jsonb_size('{"a":1e-05,"b":-0.0}')  # '{"a": 0.00001, "b": 0.0}'
    24
    """
    size = len(text.encode())
    outside = _STRING.sub("", text)
    size += outside.count(",") + outside.count(":")
    if "-0" in outside:
        size -= len(_NEGATIVE_ZERO.findall(outside))
    if "e" in outside or "E" in outside:
        for number in _EXPONENT.findall(outside):
            size += len(_numeric_text(number)) - len(number)
    return size


def _numeric_text(number: str) -> str:
    """How PostgreSQL's numeric prints a JSON number written with an exponent."""
    value = Decimal(number)
    text = format(value, "f")
    return text[1:] if value.is_zero() and text.startswith("-") else text


def check_tenant_id(tenant_id: object) -> str:
    """A tenant id: the second label of its namespaces, so a non-empty text without '.'."""
    if not isinstance(tenant_id, str) or not tenant_id or any(c in tenant_id for c in ".\x00"):
        raise InvalidInputError(
            "a tenant id is the label after 'tenants' in its namespaces: a non-empty string "
            "without '.' or NUL"
        )
    return tenant_id


def check_limit(name: str, value: object) -> int | None:
    """A quota limit: a non-negative int, or None (unlimited)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInputError(f"{name} must be a non-negative int or None (unlimited)")
    return value


def quota_error(message: str) -> QuotaExceededError | None:
    """The error for a write script's refusal (its error text), or None for another error.

    >>> print(quota_error("LMQ01 tenant acme is over its quota: 3 of 2 items, 9 of 50 bytes"))
    ... # doctest: +ELLIPSIS
    tenant acme is over its quota: 3 of 2 items, 9 of 50 bytes; nothing was written. ...
    """
    if not message.startswith(QUOTA_ERROR + " "):
        return None
    return QuotaExceededError(
        f"{message[len(QUOTA_ERROR) + 1 :]}; nothing was written. Delete items, or raise the "
        "tenant's max_items / max_bytes (set_tenant_limits, or the tenant registry)"
    )

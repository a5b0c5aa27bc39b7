"""Time to live: LangGraph's `TTLConfig` as checked settings, and expiry arithmetic.

Rules:
- TTLs are minutes (LangGraph's unit) and must be positive numbers of at most
  `MAX_TTL_MINUTES` (100 years: every backend and `datetime` can hold the expiry; use
  None for no expiry); NaN, infinities and larger numbers are refused before any I/O;
- an item with a TTL expires `ttl` minutes after its last write or refreshing read;
- an expired item is never returned, whether or not the sweeper has deleted it yet;
- the sweeper deletes expired items every `sweep_interval_minutes` (default 5), and runs
  unless the store is told not to start it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from langgraph.store.base import TTLConfig

from langmem_prod.errors import ConfigurationError, InvalidInputError

DEFAULT_SWEEP_INTERVAL_MINUTES = 5.0
MAX_TTL_MINUTES = 100 * 365.25 * 24 * 60
"""The longest TTL, 100 years in minutes (52,596,000); None means no expiry."""
_KNOWN_KEYS = frozenset(
    {"default_ttl", "refresh_on_read", "sweep_interval_minutes", "omit_expired"}
)


@dataclass(frozen=True, slots=True)
class TTLSettings:
    """Checked TTL settings of a store."""

    default_ttl: float | None = None
    refresh_on_read: bool = True
    sweep_interval_minutes: float = DEFAULT_SWEEP_INTERVAL_MINUTES


def ttl_settings(config: TTLConfig | None) -> TTLSettings:
    """Check a `TTLConfig` and return its settings.

    >>> ttl_settings({"default_ttl": 60}).default_ttl
    60.0

    Raises:
        ConfigurationError: an unknown key, or a TTL or interval that is not positive.
    """
    if config is None:
        return TTLSettings()
    unknown = set(config) - _KNOWN_KEYS
    if unknown:
        raise ConfigurationError(
            f"unknown TTLConfig keys {sorted(unknown)}; use {sorted(_KNOWN_KEYS)}"
        )
    default_ttl = config.get("default_ttl")
    interval = config.get("sweep_interval_minutes")
    return TTLSettings(
        default_ttl=None if default_ttl is None else _minutes("default_ttl", default_ttl),
        refresh_on_read=bool(config.get("refresh_on_read", True)),
        sweep_interval_minutes=(
            DEFAULT_SWEEP_INTERVAL_MINUTES
            if interval is None
            else _minutes("sweep_interval_minutes", interval)
        ),
    )


def _minutes(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigurationError(f"TTLConfig {name} must be a positive number of minutes")
    if not value <= MAX_TTL_MINUTES:  # infinities and huge ints included
        raise ConfigurationError(
            f"TTLConfig {name} must be at most {MAX_TTL_MINUTES:.0f} minutes (100 years); "
            "use None for no expiry"
        )
    return float(value)


def check_ttl(ttl: Any) -> float | None:
    """Check a per-put TTL (minutes, or None for no expiry).

    >>> check_ttl(1.5), check_ttl(None)
    (1.5, None)
    """
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not ttl > 0:
        raise InvalidInputError("ttl must be a positive number of minutes, or None")
    if not ttl <= MAX_TTL_MINUTES:  # infinities and huge ints included
        raise InvalidInputError(
            f"ttl must be at most {MAX_TTL_MINUTES:.0f} minutes (100 years); use None for no expiry"
        )
    return float(ttl)


def expires_at(now: datetime, ttl_minutes: float | None) -> datetime | None:
    """When an item written or read at `now` with this TTL expires.

    >>> from datetime import datetime, timezone
    >>> expires_at(datetime(2026, 1, 1, tzinfo=timezone.utc), 1.5).isoformat()
    '2026-01-01T00:01:30+00:00'
    """
    return None if ttl_minutes is None else now + timedelta(minutes=ttl_minutes)

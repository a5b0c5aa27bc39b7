"""What every langmem_prod store shares: checked settings, the clock, batch planning.

Rules:
- every setting is checked when the store is built, so a misconfigured store fails at
  once with a `ConfigurationError`, not at its first call;
- the store's clock (injectable for tests) must return aware datetimes; item times come
  from it, never from the server's clock;
- a backend's base class calls `_init_common` and then builds its runner and worker;
- with a `ValueTransform` (`values=`), a batch is validated (the transform checks its
  puts' values), then the transform prepares for its namespaces, then it is planned
  (values sealed for the batch's write time), run, and its items opened.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from langgraph.store.base import IndexConfig, Op, TTLConfig

from langmem_prod.errors import ConfigurationError
from langmem_prod.store._access import TRACK_ACCESS_MODES, TrackAccess
from langmem_prod.store._api import StoreApi
from langmem_prod.store._index import IndexSettings, index_settings
from langmem_prod.store._maintenance import MaintenanceSchedule
from langmem_prod.store._ops import BatchPlan, check_timestamp, plan_batch
from langmem_prod.store._retry import RetryPolicy
from langmem_prod.store._transform import ValueTransform
from langmem_prod.store._ttl import ttl_settings


def utcnow() -> datetime:
    """The default clock."""
    return datetime.now(UTC)


class StoreBase(StoreApi):
    """Settings and planning of any store; backends add their connection and layout."""

    index_config: IndexConfig | None
    _index: IndexSettings | None
    _schedule: MaintenanceSchedule

    def _init_common(
        self,
        *,
        index: IndexConfig | None,
        ttl: TTLConfig | None,
        track_access: TrackAccess,
        max_value_bytes: int,
        start_sweeper: bool,
        flush_interval: float,
        retry: RetryPolicy | None,
        clock: Callable[[], datetime] | None,
        values: ValueTransform | None = None,
    ) -> None:
        if values is not None and not isinstance(values, ValueTransform):
            raise ConfigurationError(
                "values must be a ValueTransform (prepare, aprepare, seal, open, check_search)"
            )
        if track_access not in TRACK_ACCESS_MODES:
            raise ConfigurationError(f"track_access must be one of {', '.join(TRACK_ACCESS_MODES)}")
        if (
            isinstance(max_value_bytes, bool)
            or not isinstance(max_value_bytes, int)
            or max_value_bytes < 2
        ):
            raise ConfigurationError("max_value_bytes must be an int of at least 2")
        if not flush_interval > 0:
            raise ConfigurationError("flush_interval must be a positive number of seconds")
        self.index_config = index
        self.ttl_config = ttl
        self._ttl = ttl_settings(ttl)
        self._index = index_settings(index)
        self.embeddings = self._index.embeddings if self._index else None
        self._track = track_access
        self._max_value_bytes = max_value_bytes
        self._clock = clock or utcnow
        self._retry = retry or RetryPolicy()
        self._flush_interval = float(flush_interval)
        sweep = self._ttl.sweep_interval_minutes * 60 if start_sweeper else None
        self._schedule = MaintenanceSchedule(self._flush_interval, sweep, time.monotonic())
        self._closed = False
        self.values = values

    def _new_runner(self) -> None:
        """Build `self._runner` for the connection (refusing one of the other kind)."""
        raise NotImplementedError

    def _new_worker(self) -> None:
        """Build `self._worker`, the background maintenance, and hook it to the runner."""
        raise NotImplementedError

    def _plan(
        self, ops: Iterable[Op], *, validate: bool = True, now: datetime | None = None
    ) -> BatchPlan:
        return plan_batch(
            ops,
            index=self._index,
            max_value_bytes=self._max_value_bytes,
            validate=validate,
            transform=self.values,
            now=now,
        )

    def _now(self) -> datetime:
        return check_timestamp(self._clock())

    def _sweep_seconds(self, sweep_interval_minutes: float | None) -> float:
        minutes = sweep_interval_minutes or self._ttl.sweep_interval_minutes
        if not minutes > 0:
            raise ConfigurationError("sweep_interval_minutes must be positive")
        return float(minutes) * 60

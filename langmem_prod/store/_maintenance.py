"""When background maintenance runs: access-buffer flushes and TTL sweeps.

Rules:
- times here are monotonic seconds supplied by the caller, never read from a clock;
- buffered reads are flushed `flush_interval` seconds after the first of them was
  noticed, and at once when the buffer is full;
- expired items are swept every `sweep_interval` seconds, the first sweep one interval
  after the store starts; a sweep flushes the buffer first;
- with nothing due, the worker sleeps until the next due time (at most an hour).
"""

from __future__ import annotations

from dataclasses import dataclass, field

_MAX_SLEEP = 3600.0


@dataclass(slots=True)
class MaintenanceSchedule:
    """The timetable of one store's background worker.

    >>> s = MaintenanceSchedule(flush_interval=1.0, sweep_interval=300.0, started=0.0)
    >>> s.note_reads(10.0, pending=3, full=False)
    >>> s.flush_due(10.5), s.flush_due(11.0), s.sweep_due(300.0)
    (False, True, True)
    """

    flush_interval: float
    sweep_interval: float | None
    started: float
    _next_sweep: float | None = field(init=False, default=None)
    _flush_at: float | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.sweep_interval is not None:
            self._next_sweep = self.started + self.sweep_interval

    def set_sweep_interval(self, seconds: float | None, now: float) -> None:
        """Sweep every `seconds` from `now` on, or never (None)."""
        self.sweep_interval = seconds
        self._next_sweep = None if seconds is None else now + seconds

    def note_reads(self, now: float, *, pending: int, full: bool) -> None:
        """Tell the schedule how many reads wait in the buffer."""
        if full:
            self._flush_at = now
        elif pending and self._flush_at is None:
            self._flush_at = now + self.flush_interval

    def flush_due(self, now: float) -> bool:
        """Whether buffered reads should be written now (and forget the deadline)."""
        if self._flush_at is None or now < self._flush_at:
            return False
        self._flush_at = None
        return True

    def sweep_due(self, now: float) -> bool:
        """Whether a sweep is due at `now`; if so, the next one is scheduled."""
        if self._next_sweep is None or now < self._next_sweep:
            return False
        assert self.sweep_interval is not None
        self._next_sweep = now + self.sweep_interval
        self._flush_at = None
        return True

    def delay(self, now: float) -> float:
        """Seconds the worker may sleep before its next round."""
        due = [t for t in (self._flush_at, self._next_sweep) if t is not None]
        return min([_MAX_SLEEP, *(max(0.0, t - now) for t in due)])

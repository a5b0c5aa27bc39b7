"""Access tracking kept off the read path: reads are recorded here and written in batches.

Rules:
- a read records, per item, one more access at `at`, and whether it refreshes the TTL;
- records of the same item merge: hits add up, the latest time wins, refresh is sticky;
- `drain()` hands over everything recorded so far and starts empty; the caller writes it
  with one statement per flush;
- the buffer is bounded: past `max_items` distinct items, a flush is due at once;
- `track_reads` is how a read flow hands its reads over: buffered ("batched"), written
  in the same batch ("sync"), or, with "off", only those that refresh a TTL, buffered.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NamedTuple

from langmem_prod.store._effects import RecordAccess

TrackAccess = Literal["batched", "sync", "off"]
TRACK_ACCESS_MODES: tuple[str, ...] = ("batched", "sync", "off")


class AccessRecord(NamedTuple):
    """What one flush writes for one item."""

    prefix: str
    key: str
    hits: int
    at: datetime
    refresh: bool


@dataclass(slots=True)
class _Entry:
    hits: int
    at: datetime
    refresh: bool


class AccessBuffer:
    """Accumulates reads between flushes; not thread-safe (its owner holds a lock).

    >>> from datetime import datetime, timezone
    >>> t = datetime(2026, 1, 1, tzinfo=timezone.utc)
    >>> buf = AccessBuffer()
    >>> buf.record([("a", "k", False), ("a", "k", False)], t)
    True
    >>> [(r.key, r.hits) for r in buf.drain()], len(buf)
    ([('k', 2)], 0)
    """

    def __init__(self, max_items: int = 10_000) -> None:
        self._entries: dict[tuple[str, str], _Entry] = {}
        self.max_items = max_items

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def full(self) -> bool:
        """Whether the buffer holds enough to flush now rather than wait."""
        return len(self._entries) >= self.max_items

    def record(self, reads: Iterable[tuple[str, str, bool]], at: datetime) -> bool:
        """Record one read at `at` of each (prefix, key, refreshes_ttl).

        Returns whether the buffer was empty or is now full: when a flush wants planning.
        """
        entries = self._entries
        was_empty = not entries
        for prefix, key, refresh in reads:
            entry = entries.get((prefix, key))
            if entry is None:
                entries[(prefix, key)] = _Entry(1, at, refresh)
            else:
                entry.hits += 1
                entry.at = max(entry.at, at)
                if refresh:
                    entry.refresh = True
        return was_empty or len(entries) >= self.max_items

    def drain(self) -> list[AccessRecord]:
        """Return every record and empty the buffer."""
        entries, self._entries = self._entries, {}
        return [
            AccessRecord(prefix, key, e.hits, e.at, e.refresh)
            for (prefix, key), e in entries.items()
        ]


def track_reads(
    track: TrackAccess,
    reads: list[tuple[str, str, bool]],
    at: datetime,
    write_now: Callable[[list[AccessRecord]], Any],
) -> Generator[Any, Any, None]:
    """Hand over reads of (prefix, key, refreshes_ttl) made at `at`, as `track` says.

    Yields `RecordAccess` to buffer them, or with "sync" the backend's effect that
    `write_now` makes to write them at once.
    """
    if track == "off":
        reads = [r for r in reads if r[2]]
    if not reads:
        return
    if track == "sync":
        buffer = AccessBuffer()
        buffer.record(reads, at)
        yield write_now(buffer.drain())
    else:
        yield RecordAccess(reads, at)

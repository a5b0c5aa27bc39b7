"""What a verification reports, from what a backend read of a chain; no I/O.

Rules:
- a backend reads either the whole chain, or, given a checkpoint at entry s > 1, a
  window: entry s - 1 (the anchor: its stored hash is trusted, not checked), entry s and
  every entry after, with the count of entries stored before the window. The head is read
  with the entries, in one snapshot (one statement, or a last page read with the head);
- whole or window, it reports what the chain and its head show (`_chain`): altered,
  removed, reordered or forged entries, a cut tail, a lost head; and what the head's MAC
  shows (`_head`) on a keyed log;
- with a checkpoint it also reports: a wiped chain (no entries and no head, while the
  checkpoint says there were s), a head behind the checkpoint (rolled back), the
  checkpoint's entry missing or not the one witnessed (altered, replaced, or an earlier
  entry changed so that the chain no longer reaches the witnessed hash), and entries
  before it removed or added (their count is not s - 1);
- from a window, entries before the anchor are counted, not read: changing one of them
  without touching the entries after it is seen only by a whole read (`full=True`).
"""

from __future__ import annotations

from dataclasses import dataclass

from langmem_prod.compliance._chain import (
    EMPTY,
    AuditEntry,
    Head,
    Problem,
    head_problems,
    verify_chain,
)
from langmem_prod.compliance._checkpoint import Checkpoint
from langmem_prod.compliance._head import ChainHead
from langmem_prod.compliance._head import head_problems as signature_problems

WIPED = "the chain was wiped: no entries and no head, but a witnessed checkpoint counts"
BEHIND = "the chain's head is behind the witnessed checkpoint: the chain was rolled back"
MISSING = "the entry the checkpoint witnessed is missing"
REPLACED = (
    "the entry at the checkpoint is not the one it witnessed: altered, replaced, or an "
    "entry before it changed"
)


@dataclass(frozen=True, slots=True)
class Read:
    """A backend's read of a chain: entries in stored order, its head, what was skipped.

    `before` counts the entries stored before `entries[0]` (0 for a whole read);
    `position` is where the last entry read is stored (a Redis stream id), for the next
    checkpoint.
    """

    entries: list[AuditEntry]
    head: ChainHead | None
    before: int = 0
    whole: bool = True
    position: str = ""


def verify_read(
    tenant: str, read: Read, key: bytes | None, since: Checkpoint | None = None
) -> list[Problem]:
    """Every problem the read shows, against a trusted checkpoint `since` if given."""
    head = read.head
    problems = [] if head is None else signature_problems(tenant, head, key)
    if since is not None and since.seq > 0:
        problems += _witnessed(read, since)
    problems += _chain_problems(read, key, since)
    entries = read.entries
    last = max(entries, key=lambda e: e.seq, default=None)
    if last is not None or read.before == 0:
        problems += head_problems(last, None if head is None else head.point)
    return problems


def _at(entries: list[AuditEntry], seq: int) -> int | None:
    return next((n for n, entry in enumerate(entries) if entry.seq == seq), None)


def _witnessed(read: Read, since: Checkpoint) -> list[Problem]:
    seq, entries = since.seq, read.entries
    if read.head is None and not entries and read.before == 0:
        return [Problem(seq, f"{WIPED} {seq} entries")]
    problems: list[Problem] = []
    if read.head is not None and read.head.seq < seq:
        problems.append(Problem(read.head.seq, BEHIND))
    n = _at(entries, seq)
    if n is None:
        return [*problems, Problem(seq, MISSING)]
    if entries[n].hash != since.hash:
        problems.append(Problem(seq, REPLACED))
    if read.before + n != seq - 1:
        problems.append(
            Problem(
                seq,
                f"{read.before + n} entries are stored before the checkpoint's, which "
                f"followed {seq - 1}: entries before it were removed or added",
            )
        )
    return problems


def _chain_problems(read: Read, key: bytes | None, since: Checkpoint | None) -> list[Problem]:
    """The chain's breaks: from its start when read whole, else from the checkpoint on."""
    if read.whole or since is None:
        return verify_chain(read.entries, key)
    entries, seq = read.entries, since.seq
    n = _at(entries, seq)
    if n is None:  # verify what follows from the witnessed hash
        after = [e for e in entries if e.seq > seq]
        return verify_chain(after, key, Head(seq, since.hash))
    anchor = entries[n - 1] if n > 0 else None
    if anchor is not None and anchor.seq == seq - 1:
        return verify_chain(entries[n:], key, Head(anchor.seq, anchor.hash))
    if seq == 1:
        return verify_chain(entries[n:], key, EMPTY)
    return verify_chain(entries[n + 1 :], key, Head(seq, entries[n].hash))

"""Witnesses: where checkpoints are kept, outside the database the audit log is in.

Rules:
- a `Witness` writes checkpoints and answers the latest one per tenant; it refuses a
  checkpoint behind the latest it holds (`_checkpoint.advance`), so a rolled-back chain
  can never be witnessed over the state it lost;
- `FileWitness` appends JSON lines to one file: the whole batch in one write, then
  fsync (and, when it made the file, fsync of its directory). Processes on one host share
  it safely: each write holds an exclusive `flock` on the file while it reads what others
  appended since it last looked, checks, and appends; readers hold a shared one. Threads
  of one process are serialised by a lock;
- it reads the file once, then only what was appended since; a file found shorter than
  already read, or replaced by another file, raises `AuditChainError` (someone truncated
  or swapped the witness); a line that is not a checkpoint raises too. A last line with
  no newline is a write cut short by a crash: readers skip it, the next writer cuts it;
- the file is only as good as the place it lives in: keep it where the database's
  administrators cannot write (another host, an append-only or WORM volume, or copy it
  there), and give each audit log its own file (tenant ids are the keys).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol, runtime_checkable

from langmem_prod.compliance._checkpoint import Checkpoint, advance
from langmem_prod.errors import AuditChainError, ConfigurationError, InvalidInputError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]


@runtime_checkable
class Witness(Protocol):
    """Keeps checkpoints outside the audit log's database (see `FileWitness`)."""

    def write(self, *checkpoints: Checkpoint) -> None:
        """Keep `checkpoints`; refuse (writing none) if one is behind the latest held."""
        ...

    def latest(self, tenant: str) -> Checkpoint | None:
        """The tenant's latest checkpoint, or None if it has none."""
        ...

    def tenants(self) -> list[str]:
        """Every tenant with a checkpoint (a wiped chain's tenant stays listed)."""
        ...


class FileWitness:
    """A witness in an append-only JSON-lines file, safe for several processes on one host.

    Example:
        >>> import tempfile
        >>> from datetime import UTC, datetime
        >>> at = datetime(2026, 1, 1, tzinfo=UTC)
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     witness = FileWitness(f"{folder}/witness.jsonl")
        ...     witness.write(Checkpoint("acme", 3, bytes(32), at))
        ...     again = FileWitness(f"{folder}/witness.jsonl")  # another process, say
        ...     again.latest("acme").seq, again.tenants(), again.latest("globex")
        (3, ['acme'], None)
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        if fcntl is None:  # pragma: no cover - not POSIX
            raise ConfigurationError("FileWitness needs a POSIX system (flock)")
        self.path = Path(path)
        self._latest: dict[str, Checkpoint] = {}
        self._offset = 0
        self._inode: tuple[int, int] | None = None
        self._lock = threading.Lock()

    @contextmanager
    def _locked(self, exclusive: bool) -> Iterator[int]:
        """The file, open and locked, caught up with what other writers appended."""
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT if exclusive else os.O_RDONLY
        with self._lock:
            if not exclusive and not self.path.exists():
                if self._inode is not None:
                    raise self._tampered()
                yield -1
                return
            created = exclusive and not self.path.exists()
            fd = os.open(self.path, flags, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
                if created:
                    _sync_directory(self.path.parent)
                self._catch_up(fd, exclusive)
                yield fd
            finally:
                os.close(fd)  # also releases the lock

    def _catch_up(self, fd: int, cut_torn: bool) -> None:
        stat = os.fstat(fd)
        inode = (stat.st_dev, stat.st_ino)
        if (self._inode is not None and inode != self._inode) or stat.st_size < self._offset:
            raise self._tampered()
        self._inode = inode
        tail = os.pread(fd, stat.st_size - self._offset, self._offset)
        complete = tail.rfind(b"\n") + 1
        for number, line in enumerate(tail[:complete].splitlines()):
            try:
                checkpoint = Checkpoint.from_json(line)
            except InvalidInputError as exc:
                raise AuditChainError(
                    f"the witness file {str(self.path)!r} holds a line that is not a checkpoint "
                    f"(line {number + 1} after byte {self._offset}); restore it from a copy"
                ) from exc
            self._latest[checkpoint.tenant] = checkpoint
        self._offset += complete
        if cut_torn and complete < len(tail):
            os.ftruncate(fd, self._offset)

    def _tampered(self) -> AuditChainError:
        return AuditChainError(
            f"the witness file {str(self.path)!r} was truncated, removed or replaced since "
            "it was last read; restore it from a copy before trusting or writing checkpoints"
        )

    def write(self, *checkpoints: Checkpoint) -> None:
        """Append `checkpoints` and fsync; refuse all of them if one goes back."""
        if not checkpoints:
            return
        with self._locked(exclusive=True) as fd:
            fresh = advance(self._latest, checkpoints)
            data = b"".join(c.to_json() + b"\n" for c in fresh)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
            self._offset += len(data)
            self._latest.update((c.tenant, c) for c in fresh)

    def latest(self, tenant: str) -> Checkpoint | None:
        """The tenant's latest checkpoint in the file, or None."""
        with self._locked(exclusive=False):
            return self._latest.get(tenant)

    def tenants(self) -> list[str]:
        """Every tenant with a checkpoint in the file, sorted."""
        with self._locked(exclusive=False):
            return sorted(self._latest)


def _sync_directory(folder: Path) -> None:
    """Make a new file's directory entry durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

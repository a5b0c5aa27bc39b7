"""FileWitness: append-only JSON lines, shared by processes, loud when tampered with."""

from __future__ import annotations

import multiprocessing
import os
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from langmem_prod.compliance import Checkpoint, FileWitness, Witness
from langmem_prod.errors import AuditChainError

AT = datetime(2026, 1, 1, tzinfo=UTC)
WRITERS, WRITES = 4, 40


def point(tenant: str, seq: int, fill: int = 0, minutes: int = 0) -> Checkpoint:
    return Checkpoint(tenant, seq, bytes([fill]) * 32, AT + timedelta(minutes=minutes))


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


def test_it_keeps_the_latest_checkpoint_per_tenant(tmp_path: Path) -> None:
    witness = FileWitness(tmp_path / "w.jsonl")
    assert isinstance(witness, Witness)
    assert witness.latest("acme") is None and witness.tenants() == []
    assert not (tmp_path / "w.jsonl").exists()  # reading creates nothing
    witness.write()  # nothing to write
    witness.write(point("acme", 1), point("globex", 4))
    witness.write(point("acme", 3))
    witness.write(point("acme", 3))  # nothing new: not appended again
    assert len(lines(tmp_path / "w.jsonl")) == 3
    reader = FileWitness(tmp_path / "w.jsonl")
    assert reader.latest("acme") == point("acme", 3) and reader.tenants() == ["acme", "globex"]


def test_a_batch_with_one_checkpoint_going_back_writes_nothing(tmp_path: Path) -> None:
    witness = FileWitness(tmp_path / "w.jsonl")
    witness.write(point("acme", 5))
    with pytest.raises(AuditChainError, match="behind the one the witness holds"):
        witness.write(point("globex", 1), point("acme", 4, minutes=1))
    with pytest.raises(AuditChainError, match="behind"):
        FileWitness(tmp_path / "w.jsonl").write(point("acme", 5, fill=1))  # same seq, other hash
    assert len(lines(tmp_path / "w.jsonl")) == 1 and witness.latest("globex") is None
    witness.write(point("acme", 3, minutes=-1))  # stale (an overlapping job): skipped
    assert len(lines(tmp_path / "w.jsonl")) == 1


def _write_many(path: str, n: int) -> None:
    witness = FileWitness(path)
    for seq in range(1, WRITES + 1):
        witness.write(point(f"t{n}", seq))
        shared = witness.latest("shared")
        with suppress(AuditChainError):  # every process pushes it forward: some lose the race
            witness.write(point("shared", (shared.seq if shared else 0) + 1, fill=n))


def test_processes_share_one_file(tmp_path: Path) -> None:
    path = tmp_path / "w.jsonl"
    fork = multiprocessing.get_context("fork")  # separate processes, quick to start
    workers = [fork.Process(target=_write_many, args=(str(path), n)) for n in range(WRITERS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    checkpoints = [Checkpoint.from_json(line) for line in lines(path)]  # no line torn
    witness = FileWitness(path)
    for n in range(WRITERS):
        assert [c.seq for c in checkpoints if c.tenant == f"t{n}"] == list(range(1, WRITES + 1))
    shared = [c.seq for c in checkpoints if c.tenant == "shared"]
    assert shared == list(range(1, len(shared) + 1))  # never twice the same seq, never back
    assert (
        witness.latest("shared")
        == checkpoints[max(i for i, c in enumerate(checkpoints) if c.tenant == "shared")]
    )


def test_a_line_cut_short_by_a_crash_is_skipped_then_cut(tmp_path: Path) -> None:
    path = tmp_path / "w.jsonl"
    FileWitness(path).write(point("acme", 1))
    with path.open("ab") as file:
        file.write(point("acme", 2).to_json()[:20])  # no newline: the write never finished
    assert FileWitness(path).latest("acme") == point("acme", 1)
    FileWitness(path).write(point("acme", 3))
    assert [Checkpoint.from_json(line).seq for line in lines(path)] == [1, 3]


@pytest.mark.parametrize("tamper", ["truncate", "replace", "remove"])
def test_a_witness_file_cut_or_swapped_is_refused(tmp_path: Path, tamper: str) -> None:
    path = tmp_path / "w.jsonl"
    witness = FileWitness(path)
    witness.write(point("acme", 1), point("acme", 2))
    assert witness.latest("acme") == point("acme", 2)
    first = lines(path)[0] + b"\n"
    if tamper == "truncate":
        os.truncate(path, len(first))
    elif tamper == "replace":
        replacement = tmp_path / "other.jsonl"
        replacement.write_bytes(first + point("acme", 2, fill=7).to_json() + b"\n")
        replacement.replace(path)
    else:
        path.unlink()
    with pytest.raises(AuditChainError, match="truncated, removed or replaced"):
        witness.latest("acme")
    with pytest.raises(AuditChainError, match="truncated, removed or replaced"):
        witness.write(point("acme", 3))


def test_a_line_that_is_not_a_checkpoint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "w.jsonl"
    path.write_bytes(point("acme", 1).to_json() + b"\n" + b'{"tenant": "acme"}\n')
    with pytest.raises(AuditChainError, match=r"not a checkpoint \(line 2"):
        FileWitness(path).latest("acme")

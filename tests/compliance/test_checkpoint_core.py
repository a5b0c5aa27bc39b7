"""Signed heads, checkpoints and what a verification reports, with no I/O.

The property test states exactly what is caught, from a whole read and from a
checkpoint's window, for every way an insider without the key can change a keyed chain.
"""

from __future__ import annotations

import inspect
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from langmem_prod import compliance
from langmem_prod.compliance import AuditLog, PostgresAuditLog, RedisAuditLog
from langmem_prod.compliance._chain import EMPTY, AuditEntry, Head, extend, unchained
from langmem_prod.compliance._checkpoint import (
    Checkpoint,
    Tip,
    advance,
    checkpoint_of,
    checkpoint_problems,
    make_checkpoint,
)
from langmem_prod.compliance._head import (
    ChainHead,
    head_problems,
    key_id,
    make_head,
    signs_after,
    statement_mac,
)
from langmem_prod.compliance._verify import Read, verify_read
from langmem_prod.errors import AuditChainError, InvalidInputError
from tests.core.test_layout import BANNED, imported_modules

AT = datetime(2026, 1, 1, tzinfo=UTC)
KEY = bytes(range(32))


def chain(n: int, tenant: str = "acme", key: bytes | None = KEY) -> list[AuditEntry]:
    events = [("put", ("notes",), f"k{i}") for i in range(n)]
    pending = unchained(tenant, events, AT, "bot", "ada")
    return extend(
        EMPTY, [replace(e, at=AT + timedelta(seconds=i)) for i, e in enumerate(pending)], key
    )


def head_of(entries: list[AuditEntry], key: bytes | None = KEY) -> ChainHead:
    last = entries[-1]
    return make_head(key, last.tenant, Head(last.seq, last.hash), last.at, sign=True)


def test_a_head_mac_binds_tenant_seq_hash_time_and_key() -> None:
    entries = chain(3)
    head = head_of(entries)
    assert head.key_id == key_id(KEY) and head_problems("acme", head, KEY) == []
    assert head_problems("acme", head, None) == []  # unkeyed: nothing to check
    changed = [
        replace(head, seq=2),
        replace(head, hash=entries[1].hash),
        replace(head, at=AT),
        replace(head, mac=bytes(32)),
    ]
    for forged in changed:
        assert "MAC does not verify" in head_problems("acme", forged, KEY)[0].reason
    assert "MAC does not verify" in head_problems("globex", head, KEY)[0].reason
    assert "another audit key" in head_problems("acme", head, bytes(32))[0].reason
    assert "not signed" in head_problems("acme", replace(head, mac=None), KEY)[0].reason
    assert head_problems("acme", ChainHead(0, EMPTY.hash), KEY) == []  # an empty chain


def test_a_head_mac_never_passes_for_a_checkpoint_mac() -> None:
    head = head_of(chain(3))
    assert head.at is not None and head.mac is not None
    posing = Checkpoint("acme", head.seq, head.hash, head.at, head.key_id, head.mac)
    assert "MAC does not verify" in checkpoint_problems(posing, "acme", KEY)[0].reason
    real = make_checkpoint(KEY, "acme", head.point, head.at)
    assert checkpoint_problems(real, "acme", KEY) == [] and real.mac != head.mac
    args = ("audit-head", "acme", head.point)
    assert statement_mac(KEY, *args, at=AT, kid="a") != statement_mac(KEY, *args, at=AT, kid="b")


def test_appenders_sign_only_over_a_head_they_can_vouch_for() -> None:
    head = head_of(chain(3))
    assert signs_after("acme", head, KEY) is True
    assert signs_after("acme", ChainHead(0, EMPTY.hash), KEY) is True
    assert signs_after("acme", replace(head, mac=None, key_id=None), KEY) is False  # carried
    assert signs_after("acme", head, None) is False
    with pytest.raises(AuditChainError, match="not signed by this log's key"):
        signs_after("acme", replace(head, seq=2), KEY)


def test_checkpoints_round_trip_and_refuse_what_is_not_one() -> None:
    point = make_checkpoint(KEY, "acme", Head(3, bytes(32)), AT, "1-2")
    assert Checkpoint.from_json(point.to_json()) == point
    assert Checkpoint.from_json(point.to_json().decode()) == point
    for bad in [
        b"not json",
        b"{}",
        point.to_json().replace(b'"seq":3', b'"seq":-1'),
        point.to_json().replace(b'"seq":3', b'"seq":true'),
        point.to_json().replace(b'"tenant":"acme"', b'"tenant":"a{b}"'),
        point.to_json().replace(b"+00:00", b""),
        point.to_json().replace(bytes(32).hex().encode(), b"00"),
    ]:
        with pytest.raises(InvalidInputError, match="not an audit checkpoint"):
            Checkpoint.from_json(bad)
    with pytest.raises(InvalidInputError, match="another tenant's"):
        checkpoint_problems(point, "globex", KEY)
    assert checkpoint_problems(replace(point, position="9-9"), "acme", KEY) == []  # a hint
    assert "not signed" in checkpoint_problems(replace(point, mac=None), "acme", KEY)[0].reason


def test_a_witness_never_takes_a_checkpoint_going_back() -> None:
    held = {"acme": Checkpoint("acme", 5, b"a" * 32, AT)}
    same = Checkpoint("acme", 5, b"a" * 32, AT + timedelta(hours=1))
    assert advance(held, [same]) == []  # nothing new: not written again
    newer = Checkpoint("acme", 6, b"b" * 32, AT)
    assert advance(held, [newer, Checkpoint("globex", 1, b"c" * 32, AT)])[0] == newer
    later = AT + timedelta(minutes=1)
    for back in [
        Checkpoint("acme", 4, b"a" * 32, later),  # made after the held one, yet behind it
        Checkpoint("acme", 5, b"b" * 32, AT),  # the same seq, another hash: any time
    ]:
        with pytest.raises(AuditChainError, match="behind the one the witness holds"):
            advance(held, [back, Checkpoint("acme", 9, b"d" * 32, AT)])
    stale = Checkpoint("acme", 4, b"a" * 32, AT - timedelta(minutes=1))  # an overlapping job
    assert advance(held, [stale, newer]) == [newer]


def test_a_checkpoint_is_made_only_of_a_head_that_can_be_vouched_for() -> None:
    entries = chain(3)
    head = head_of(entries)
    last = Head(3, entries[-1].hash)
    made = checkpoint_of(Tip("acme", head, last, "5-0"), KEY, AT)
    assert (made.seq, made.hash, made.position, made.key_id) == (3, last.hash, "5-0", key_id(KEY))
    assert checkpoint_of(Tip("acme", None, None), KEY, AT).seq == 0
    for tip in [
        Tip("acme", None, last),
        Tip("acme", head, Head(2, entries[1].hash)),
        Tip("acme", replace(head, mac=None), last),
        Tip("acme", replace(head, seq=2, hash=entries[1].hash), Head(2, entries[1].hash)),
    ]:
        with pytest.raises(AuditChainError, match="cannot be vouched for"):
            checkpoint_of(tip, KEY, AT)


def whole(entries: list[AuditEntry], head: ChainHead | None) -> Read:
    return Read(sorted(entries, key=lambda e: e.seq), head)


def window(entries: list[AuditEntry], head: ChainHead | None, since: Checkpoint) -> Read:
    """What PostgreSQL reads from a checkpoint: seq >= s - 1, and a count of the rest."""
    if since.seq <= 1:
        return whole(entries, head)
    start = since.seq - 1
    inside = sorted((e for e in entries if e.seq >= start), key=lambda e: e.seq)
    return Read(inside, head, sum(e.seq < start for e in entries), whole=False)


TAMPERS = ["delete", "alter", "replay", "wipe", "none"]


@given(
    n=st.integers(2, 12),
    data=st.data(),
    tamper=st.sampled_from(TAMPERS),
    read_whole=st.booleans(),
)
def test_what_a_checkpoint_catches(
    n: int, data: st.DataObject, tamper: str, read_whole: bool
) -> None:
    entries = chain(n)
    heads = [head_of(entries[:m]) for m in range(1, n + 1)]  # every genuine head, kept
    s = data.draw(st.integers(1, n), label="checkpoint seq")
    since = make_checkpoint(KEY, "acme", Head(s, entries[s - 1].hash), AT)
    k = data.draw(st.integers(1, n), label="entry touched / kept")
    stored, head = list(entries), heads[-1]
    if tamper == "delete":
        stored = [e for e in entries if e.seq != k]
    elif tamper == "alter":
        stored = [replace(e, operation="get") if e.seq == k else e for e in entries]
    elif tamper == "replay":  # cut back to entry k and put its genuine head back
        stored, head = entries[:k], heads[k - 1]
    elif tamper == "wipe":
        stored, head = [], None
    read = whole(stored, head) if read_whole else window(stored, head, since)
    problems = verify_read("acme", read, KEY, since)
    expected = {
        "delete": True,  # a gap, or the count before the checkpoint
        "alter": read_whole or k >= s or s == 1,  # the window reads from the checkpoint's
        "replay": k < s,  # a genuine head at or after the checkpoint: invisible
        "wipe": True,
        "none": False,
    }[tamper]
    assert bool(problems) is expected, (tamper, k, s, problems)
    assert verify_read("acme", whole(stored, head), KEY) == [] or tamper in ("delete", "alter")


def test_the_audit_core_does_no_io() -> None:
    root = Path(compliance.__file__).parent
    for name in ("_chain.py", "_head.py", "_checkpoint.py", "_verify.py", "_flows.py"):
        for module in imported_modules(root / name):
            assert module.split(".")[0] not in BANNED | {"psycopg", "os", "fcntl"}, (name, module)


def test_every_audit_method_has_its_async_twin() -> None:
    for cls in (AuditLog, PostgresAuditLog, RedisAuditLog):
        public = {n for n in dir(cls) if not n.startswith("_") and callable(getattr(cls, n))}
        sync = {n for n in public if f"a{n}" in public}
        assert sync >= {"record", "entries", "verify", "verify_witnessed", "checkpoint"}
        assert sync >= {"checkpoint_all", "witness_checkpoint", "sign_head"}
        for name in sync:
            twin = inspect.signature(getattr(cls, f"a{name}"))
            assert inspect.signature(getattr(cls, name)).parameters == twin.parameters, name
            assert inspect.iscoroutinefunction(getattr(cls, f"a{name}")), name

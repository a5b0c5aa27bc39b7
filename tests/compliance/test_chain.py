"""The audit chain with no I/O: keyed links, heads, and what verify reports."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from langmem_prod.compliance._chain import (
    EMPTY,
    AuditEntry,
    Head,
    check_events,
    check_key,
    extend,
    unchained,
    verify_log,
)
from langmem_prod.errors import ConfigurationError, InvalidInputError

AT = datetime(2026, 1, 1, tzinfo=UTC)
KEY = bytes(range(32))
EVENTS = [("put", ("a",), "k"), ("get", ("a", "b"), None), ("delete", (), "k")]


def chain(tenant: str = "acme", key: bytes | None = None) -> list[AuditEntry]:
    return extend(EMPTY, unchained(tenant, EVENTS, AT, "bot", None), key)


def head(entries: list[AuditEntry]) -> Head:
    return Head(entries[-1].seq, entries[-1].hash)


@pytest.mark.parametrize("key", [None, KEY], ids=["unkeyed", "keyed"])
def test_an_intact_chain_and_its_head_verify(key: bytes | None) -> None:
    entries = chain(key=key)
    assert [e.seq for e in entries] == [1, 2, 3]
    assert verify_log(entries, head(entries), key) == []
    assert verify_log([], None, key) == [] and verify_log([], EMPTY, key) == []


def test_keyed_links_differ_by_key_and_by_tenant() -> None:
    keyed = chain(key=KEY)
    assert [e.hash for e in keyed] != [e.hash for e in chain()]
    assert [e.hash for e in keyed] != [e.hash for e in chain(key=bytes(32))]
    copied = [replace(e, tenant="globex") for e in keyed]  # another tenant's chain
    assert [p.seq for p in verify_log(copied, head(copied), KEY)] == [1, 2, 3]


@pytest.mark.parametrize(
    ("cut", "stored_head", "seq", "reason"),
    [
        (3, None, 3, "head is missing"),
        (2, "full", 3, "last entries were removed"),
        (3, "first", 3, "entries after the chain's head"),
        (3, "other-hash", 3, "hash is not the chain head's"),
        (0, "full", 3, "last entries were removed"),
    ],
)
def test_the_head_catches_what_the_entries_cannot(
    cut: int, stored_head: str | None, seq: int, reason: str
) -> None:
    entries = chain()
    heads = {
        None: None,
        "full": head(entries),
        "first": Head(1, entries[0].hash),
        "other-hash": Head(3, bytes(32)),
    }
    problems = verify_log(entries[:cut], heads[stored_head])
    assert any(p.seq == seq and reason in p.reason for p in problems), problems


def test_bad_events_and_keys_are_refused() -> None:
    assert check_events([("put", ["a"], None)]) == (("put", ("a",), None),)  # type: ignore[list-item]
    for event in [("", ("a",), "k"), ("put", "a", "k"), ("put", ("a.b",), "k"), ("put", (), 1)]:
        with pytest.raises(InvalidInputError, match="an audit event is"):
            check_events([event])  # type: ignore[list-item]
    with pytest.raises(ConfigurationError, match="at least 32 random bytes"):
        check_key(bytes(16))
    assert check_key(None) is None and check_key(KEY) == KEY

"""list_namespaces: prefix/suffix patterns with wildcards, max_depth, paging, registry upkeep."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langgraph.store.base import ListNamespacesOp, MatchCondition, PutOp

from tests import reference
from tests.contract.conftest import FakeClock, MakeStore, Subject

NAMESPACES = [
    ("a",),
    ("a", "b"),
    ("a", "b", "c"),
    ("a", "c", "c"),
    ("a-c",),
    ("b", "b"),
    ("users", "u1", "memories"),
    ("users", "u2", "memories"),
    ("users", "u2", "prefs"),
]


@pytest.fixture
async def filled(store: Subject) -> Subject:
    await store.batch([PutOp(ns, "k", {"v": 1}) for ns in NAMESPACES])
    return store


CASES = [
    {},
    {"prefix": ("a",)},
    {"prefix": ("a", "b")},
    {"suffix": ("c",)},
    {"prefix": ("users", "*", "memories")},
    {"prefix": ("*", "b")},
    {"suffix": ("*", "c")},
    {"prefix": ("a",), "suffix": ("c",)},
    {"max_depth": 1},
    {"max_depth": 2, "prefix": ("users",)},
    {"limit": 3, "offset": 2},
    {"max_depth": 1, "limit": 2, "offset": 1},
    {"prefix": ("nothing",)},
    {"prefix": ("a", "b", "c", "d")},
]


@pytest.mark.parametrize("args", CASES, ids=[str(c) for c in CASES])
async def test_list_namespaces_cases(filled: Subject, args: dict) -> None:
    want = reference.list_namespaces(
        set(NAMESPACES),
        args.get("prefix"),
        args.get("suffix"),
        args.get("max_depth"),
        args.get("limit", 100),
        args.get("offset", 0),
    )
    assert await filled.list_namespaces(**args) == want


async def test_order_is_label_by_label(filled: Subject) -> None:
    # ("a", "b") sorts before ("a-c",) as tuples, although "a.b" > "a-c" as text.
    listed = await filled.list_namespaces()
    assert listed == sorted(NAMESPACES)
    assert listed.index(("a", "b")) < listed.index(("a-c",))


async def test_deleting_the_last_item_removes_the_namespace(filled: Subject) -> None:
    await filled.put(("a", "b"), "k2", {"v": 2})
    await filled.delete(("a", "b"), "k")
    assert ("a", "b") in await filled.list_namespaces(prefix=("a",))
    await filled.delete(("a", "b"), "k2")
    assert await filled.list_namespaces(prefix=("a", "b")) == [("a", "b", "c")]
    await filled.put(("a", "b"), "again", {"v": 3})
    assert ("a", "b") in await filled.list_namespaces(prefix=("a",))


async def test_expired_items_do_not_list_their_namespace(
    make_store: MakeStore, clock: FakeClock
) -> None:
    store = await make_store(clock=clock)
    await store.put(("short",), "k", {"v": 1}, ttl=1)
    await store.put(("long",), "k", {"v": 1})
    clock.advance(minutes=2)
    assert await store.list_namespaces() == [("long",)]


async def test_empty_match_paths_constrain_nothing(filled: Subject) -> None:
    op = ListNamespacesOp(
        match_conditions=(MatchCondition("prefix", ()), MatchCondition("suffix", ()))
    )
    assert (await filled.batch([op]))[0] == sorted(NAMESPACES)


labels = st.sampled_from(["a", "b", "c", "a-b", "ab", "é"])
namespace = st.lists(labels, min_size=1, max_size=4).map(tuple)
pattern = st.lists(st.one_of(labels, st.just("*")), min_size=0, max_size=3).map(tuple)
_counter = itertools.count()


@pytest.mark.slow
@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    namespaces=st.sets(namespace, min_size=1, max_size=15),
    prefix=pattern,
    suffix=pattern,
    max_depth=st.none() | st.integers(1, 4),
    limit=st.integers(0, 20),
    offset=st.integers(0, 5),
)
def test_list_namespaces_matches_the_reference(
    sync_store, namespaces, prefix, suffix, max_depth, limit, offset
) -> None:
    root = f"r{next(_counter)}"
    sync_store.batch([PutOp((root, *ns), "k", {"v": 1}) for ns in namespaces])
    got = sync_store.list_namespaces(
        prefix=(root, *prefix),
        suffix=suffix or None,
        max_depth=max_depth,
        limit=limit,
        offset=offset,
    )
    rooted = {(root, *ns) for ns in namespaces}
    want = reference.list_namespaces(
        rooted, (root, *prefix), suffix or None, max_depth, limit, offset
    )
    assert got == want


async def test_a_namespace_left_with_expired_items_is_not_listed(
    make_store: MakeStore, clock: FakeClock
) -> None:
    store = await make_store(clock=clock, start_sweeper=False)
    await store.put(("mixed",), "forever", {"v": 1})  # registers the namespace, no TTL yet
    await store.put(("mixed",), "brief", {"v": 1}, ttl=1)  # flags it as holding TTL items
    await store.delete(("mixed",), "forever")
    assert await store.list_namespaces() == [("mixed",)]
    clock.advance(minutes=2)
    assert await store.list_namespaces() == []

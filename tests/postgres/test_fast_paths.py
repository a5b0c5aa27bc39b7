"""The default path's shortcuts keep the store's answers: lone gets, pool checkout, listings."""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor

import pytest
from langgraph.store.base import GetOp, PutOp

from tests import reference
from tests.postgres.conftest import MakePgStore

# Labels that sit next to each other in label order: one a prefix of another, the
# characters just after NUL and just before the separator, and a label past "a" in
# text order but not in label order ("a-b" < "a.b" as text).
EDGE = [
    ("a",),
    ("a", "b"),
    ("a", "b", "c"),
    ("a", "\x01"),
    ("a", "\x01", "z"),
    ("a\x01",),
    ("a\x01", "b"),
    ("a\x02", "x", "y"),
    ("a-b",),
    ("a-b", "c"),
    ("ab",),
    ("ab", "a", "b"),
    ("b",),
    ("b", "a", "a"),
    ("é", "ü"),
]


@pytest.mark.parametrize("max_depth", [None, 1, 2, 3])
@pytest.mark.parametrize("prefix", [None, ("a",), ("a", "b"), ("a\x01",), ("ab",), ("a", "*")])
def test_listings_match_the_reference_around_edge_labels(
    make_pg_store: MakePgStore, max_depth: int | None, prefix: tuple[str, ...] | None
) -> None:
    store = make_pg_store(start_sweeper=False)
    store.batch([PutOp(ns, "k", {"v": 1}) for ns in EDGE])
    for limit, offset in itertools.product((1, 3, 100), (0, 1, 4)):
        got = store.list_namespaces(prefix=prefix, max_depth=max_depth, limit=limit, offset=offset)
        want = reference.list_namespaces(set(EDGE), prefix, None, max_depth, limit, offset)
        assert got == want, (limit, offset)


def test_listings_skip_namespaces_emptied_or_expired(make_pg_store: MakePgStore) -> None:
    store = make_pg_store(start_sweeper=False)
    store.batch([PutOp(ns, "k", {"v": 1}) for ns in EDGE])
    store.delete(("a", "b"), "k")
    store.delete(("a\x01",), "k")
    left = set(EDGE) - {("a", "b"), ("a\x01",)}
    for max_depth in (None, 1, 2):
        got = store.list_namespaces(prefix=("a",), max_depth=max_depth)
        assert got == reference.list_namespaces(left, ("a",), None, max_depth, 100, 0)
        got = store.list_namespaces(max_depth=max_depth)
        assert got == reference.list_namespaces(left, None, None, max_depth, 100, 0)


def test_a_lone_get_answers_as_a_batched_get(make_pg_store: MakePgStore) -> None:
    store = make_pg_store(start_sweeper=False, track_access="sync")
    store.put(("tenants", "acme", "u1"), "k", {"v": 1})
    store.put(("users", "u1"), "k", {"v": 2}, ttl=5)
    for ns in (("tenants", "acme", "u1"), ("users", "u1"), ("users", "none")):
        alone = store.get(ns, "k")
        (batched,) = store.batch([GetOp(ns, "k")])
        assert (alone and alone.dict()) == (batched and batched.dict())
    assert store.get(("users", "u1"), "missing") is None


def test_a_one_connection_pool_serves_nested_and_concurrent_use(
    make_pg_store: MakePgStore,
) -> None:
    store = make_pg_store(pool_size=1, start_sweeper=False)
    store.batch([PutOp(("users", f"u{i}"), "k", {"i": i}) for i in range(20)])
    for item in store.search(("users",), limit=20):  # nested: a get per search result
        got = store.get(item.namespace, item.key)
        assert got is not None and got.value == item.value

    def work(i: int) -> int:
        store.put(("users", f"u{i % 20}"), f"t{i}", {"i": i})
        got = store.get(("users", f"u{i % 20}"), f"t{i}")
        assert got is not None
        return int(got.value["i"])

    with ThreadPoolExecutor(8) as pool:
        assert sorted(pool.map(work, range(200))) == list(range(200))


def test_a_lone_put_writes_as_a_batched_put(make_pg_store: MakePgStore, sql) -> None:
    store = make_pg_store(start_sweeper=False, max_value_bytes=64)
    store.put(("tenants", "acme", "u1"), "k", {"v": 1}, ttl=5)
    store.batch([PutOp(("tenants", "acme", "u2"), "k", {"v": 1}, ttl=5)])
    rows = sql.execute(
        f'SELECT prefix, value, ttl_minutes, expires_at - updated_at FROM "{store.schema}".items '
        "ORDER BY prefix"
    ).fetchall()
    assert [r[1:] for r in rows] == [rows[0][1:]] * 2
    assert store.list_namespaces() == [("tenants", "acme", "u1"), ("tenants", "acme", "u2")]
    for bad in ({"v": "x" * 100}, {"v": float("nan")}):
        with pytest.raises(ValueError) as alone:
            store.put(("users",), "k", bad)
        with pytest.raises(ValueError) as batched:
            store.batch([PutOp(("users",), "k", bad)])
        assert type(alone.value) is type(batched.value)
    assert store.get(("users",), "k") is None

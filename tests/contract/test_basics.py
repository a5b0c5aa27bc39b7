"""The BaseStore contract: put, get, delete, batch, search paging."""

from __future__ import annotations

import enum
import uuid

import pytest
from langgraph.store.base import GetOp, Item, ListNamespacesOp, PutOp, SearchItem, SearchOp

from tests.contract.conftest import FakeClock, MakeStore, Subject


async def test_put_get_round_trip(store: Subject) -> None:
    value = {"theme": "dark", "n": 1.5, "tags": ["a", "b"], "nested": {"x": None, "ok": True}}
    await store.put(("users", "u1"), "prefs", value)
    item = await store.get(("users", "u1"), "prefs")
    assert isinstance(item, Item)
    assert (item.namespace, item.key, item.value) == (("users", "u1"), "prefs", value)
    assert item.created_at == item.updated_at
    assert item.created_at.tzinfo is not None


async def test_get_missing_returns_none(store: Subject) -> None:
    assert await store.get(("nobody",), "nothing") is None


async def test_update_keeps_created_at(make_store: MakeStore, clock: FakeClock) -> None:
    store = await make_store(clock=clock)
    await store.put(("a",), "k", {"v": 1})
    clock.advance(minutes=5)
    await store.put(("a",), "k", {"v": 2})
    item = await store.get(("a",), "k")
    assert item.value == {"v": 2}
    assert item.updated_at - item.created_at == clock.now - item.created_at
    assert item.updated_at > item.created_at


async def test_delete(store: Subject) -> None:
    await store.put(("a",), "k", {"v": 1})
    await store.delete(("a",), "k")
    assert await store.get(("a",), "k") is None
    await store.delete(("a",), "k")  # deleting a missing item is a no-op
    await store.delete(("never", "there"), "k")


async def test_keys_are_coerced_to_str_like_langgraph(store: Subject) -> None:
    await store.put(("a",), 7, {"v": 1})  # type: ignore[arg-type]
    assert (await store.get(("a",), "7")).value == {"v": 1}


async def test_batch_results_follow_op_order_and_reads_see_the_state_before(
    store: Subject,
) -> None:
    await store.put(("a",), "old", {"v": 0})
    results = await store.batch(
        [
            PutOp(("a",), "new", {"v": 1}),
            GetOp(("a",), "old"),
            GetOp(("a",), "new"),
            SearchOp(("a",)),
            ListNamespacesOp(),
            PutOp(("a",), "old", None),
        ]
    )
    assert results[0] is None and results[5] is None
    assert results[1].value == {"v": 0}
    assert results[2] is None  # the put in the same batch is not visible to its reads
    assert [i.key for i in results[3]] == ["old"]
    assert results[4] == [("a",)]
    assert await store.get(("a",), "old") is None
    assert (await store.get(("a",), "new")).value == {"v": 1}


async def test_batch_last_write_to_a_key_wins(store: Subject) -> None:
    await store.batch(
        [
            PutOp(("a",), "k", {"v": 1}),
            PutOp(("a",), "k", {"v": 2}),
            PutOp(("a",), "gone", {"v": 1}),
            PutOp(("a",), "gone", None),
        ]
    )
    assert (await store.get(("a",), "k")).value == {"v": 2}
    assert await store.get(("a",), "gone") is None


async def test_batch_of_gets_over_many_namespaces(store: Subject) -> None:
    puts = [PutOp(("ns", str(i % 60)), f"k{i}", {"i": i}) for i in range(100)]
    await store.batch(puts)
    gets = [GetOp(("ns", str(i % 60)), f"k{i}") for i in range(100)]
    gets.append(GetOp(("ns", "0"), "missing"))
    gets.append(GetOp(("ns", "0"), "k0"))  # the same key twice
    results = await store.batch(gets)
    assert [r.value["i"] for r in results[:100]] == list(range(100))
    assert results[100] is None
    assert results[101].key == "k0"


async def test_empty_batch(store: Subject) -> None:
    assert await store.batch([]) == []


async def test_search_orders_newest_first_and_pages(
    make_store: MakeStore, clock: FakeClock
) -> None:
    store = await make_store(clock=clock)
    for i in range(7):
        clock.advance(seconds=1)
        await store.put(("docs",), f"d{i}", {"i": i})
    everything = await store.search(("docs",), limit=100)
    assert [i.key for i in everything] == [f"d{i}" for i in reversed(range(7))]
    assert all(isinstance(i, SearchItem) and i.score is None for i in everything)
    pages = [await store.search(("docs",), limit=3, offset=o) for o in (0, 3, 6)]
    assert [i.key for page in pages for i in page] == [i.key for i in everything]
    assert await store.search(("docs",), limit=0) == []


async def test_search_prefix_matches_whole_labels(store: Subject) -> None:
    for ns in [("user_1",), ("userX1",), ("user_1", "sub"), ("user_10",), ("foo",), ("foobar",)]:
        await store.put(ns, "k", {"ns": list(ns)})
    found = await store.search(("user_1",), limit=10)
    assert sorted(i.namespace for i in found) == [("user_1",), ("user_1", "sub")]
    assert [i.namespace for i in await store.search(("foo",))] == [("foo",)]
    assert len(await store.search((), limit=100)) == 6


async def test_search_whole_store_with_empty_prefix(store: Subject) -> None:
    await store.put(("a",), "1", {"v": 1})
    await store.put(("b", "c"), "2", {"v": 2})
    assert sorted(i.key for i in await store.search(())) == ["1", "2"]


async def test_unicode_namespaces_keys_and_values(store: Subject) -> None:
    ns = ("użytkownicy", "日本", "emoji🙂")
    await store.put(ns, "ключ", {"text": "naïve café 🙂", "😀": "key"})
    item = await store.get(ns, "ключ")
    assert item.value == {"text": "naïve café 🙂", "😀": "key"}
    assert await store.list_namespaces(prefix=("użytkownicy",)) == [ns]


async def test_empty_key_is_allowed_like_langgraph(store: Subject) -> None:
    await store.put(("a",), "", {"v": 1})
    assert (await store.get(("a",), "")).value == {"v": 1}


@pytest.mark.parametrize("size", [1, 250])
async def test_batch_put_many(store: Subject, size: int) -> None:
    await store.batch([PutOp(("bulk", str(i % 7)), str(i), {"i": i}) for i in range(size)])
    found = await store.search(("bulk",), limit=1000)
    assert sorted(i.value["i"] for i in found) == list(range(size))


async def test_json_edge_values_round_trip(store: Subject) -> None:
    value = {
        "big": 2**70,
        "neg": -(2**64),
        "null": None,
        "float": 0.1,
        "exp": 1.5e-7,
        "nested": [{"a": None}, [], {}],
        "text": 'tab\t quote" backslash\\ emoji 🙂',
    }
    await store.put(("edge",), "k", value)
    assert (await store.get(("edge",), "k")).value == value


async def test_uuids_and_enums_are_stored_as_json(store: Subject) -> None:
    class Colour(enum.Enum):
        RED = "red"

    ident = uuid.uuid4()
    await store.put(("edge",), "k", {"id": ident, "colour": Colour.RED, 1: "int key"})
    want = {"id": str(ident), "colour": "red", "1": "int key"}
    assert (await store.get(("edge",), "k")).value == want

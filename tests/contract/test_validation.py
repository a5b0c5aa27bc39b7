"""Bad input raises the project's errors, with clear messages, and writes nothing."""

from __future__ import annotations

import asyncio
import math
from datetime import datetime

import pytest
from langgraph.store.base import (
    GetOp,
    InvalidNamespaceError,
    ListNamespacesOp,
    MatchCondition,
    PutOp,
    SearchOp,
)

from langmem_prod import errors
from tests.contract.conftest import MakeStore, Subject

BAD_LABELS = [("a.b",), ("",), ("ok", ""), ("nul\x00",), ("ok", 3)]


async def _nothing_written(store: Subject) -> None:
    assert await store.search((), limit=10) == []
    assert await store.list_namespaces() == []


@pytest.mark.parametrize("namespace", BAD_LABELS)
async def test_invalid_namespace_on_every_op(store: Subject, namespace: tuple) -> None:
    ops = [
        GetOp(namespace, "k"),
        PutOp(namespace, "k", {"v": 1}),
        PutOp(namespace, "k", None),
        SearchOp(namespace),
        ListNamespacesOp(match_conditions=(MatchCondition("prefix", namespace),)),
    ]
    for op in ops:
        with pytest.raises(errors.InvalidNamespaceError) as info:
            await store.batch([PutOp(("fine",), "k", {"v": 1}), op])
        assert isinstance(info.value, InvalidNamespaceError)  # LangGraph's class too
        assert isinstance(info.value, ValueError)
    with pytest.raises(InvalidNamespaceError):
        await store.delete(namespace, "k")
    with pytest.raises(InvalidNamespaceError):
        await store.get(namespace, "k")
    await _nothing_written(store)


_TEXT = r"not a str.*pass a tuple, e\.g\. \('users',\)"


async def test_a_str_namespace_is_refused_everywhere(store: Subject) -> None:
    calls = [
        ("put", ("users", "k", {"v": 1}), {}),
        ("get", ("users", "k"), {}),
        ("delete", ("users", "k"), {}),
        ("search", ("users",), {}),
        ("list_namespaces", (), {"prefix": "a"}),
        ("list_namespaces", (), {"suffix": "users"}),
    ]
    for method, args, kwargs in calls:
        with pytest.raises(errors.InvalidNamespaceError, match=_TEXT) as info:
            await getattr(store, method)(*args, **kwargs)
        assert isinstance(info.value, InvalidNamespaceError)
    ops = [
        PutOp("users", "k", {"v": 1}),  # type: ignore[arg-type]
        PutOp("users", "k", None),  # type: ignore[arg-type]
        GetOp("users", "k"),  # type: ignore[arg-type]
        SearchOp("users"),  # type: ignore[arg-type]
    ]
    for op in ops:
        with pytest.raises(errors.InvalidNamespaceError, match=_TEXT):
            await store.batch([PutOp(("fine",), "k", {"v": 1}), op])
    await _nothing_written(store)


async def test_a_str_match_path_in_a_raw_op_is_one_label(store: Subject) -> None:
    """LangGraph's own tests write `MatchCondition("suffix", "public")`: the label, never its
    characters (which would match namespaces ending in ("p", "u", "b", "l", "i", "c"))."""
    for namespace in [("docs", "public"), ("docs", "private"), tuple("public"), ("public", "x")]:
        await store.put(namespace, "k", {"v": 1})
    as_text, as_tuple = await store.batch(
        [
            ListNamespacesOp(match_conditions=(MatchCondition("suffix", "public"),)),  # type: ignore[arg-type]
            ListNamespacesOp(match_conditions=(MatchCondition("suffix", ("public",)),)),
        ]
    )
    assert as_text == as_tuple == [("docs", "public")]
    (prefixed,) = await store.batch(
        [ListNamespacesOp(match_conditions=(MatchCondition("prefix", "public"),))]  # type: ignore[arg-type]
    )
    assert prefixed == [("public", "x")]


async def test_written_namespace_must_be_nonempty(store: Subject) -> None:
    with pytest.raises(errors.InvalidNamespaceError, match="namespace"):
        await store.batch([PutOp((), "k", {"v": 1})])
    await _nothing_written(store)


async def test_reserved_root_is_refused_by_put_only(store: Subject) -> None:
    """As in InMemoryStore: `put` refuses the root "langgraph"; batch PutOps and deletes pass."""
    with pytest.raises(errors.InvalidNamespaceError, match="reserved") as info:
        await store.put(("langgraph", "x"), "k", {"v": 1})
    assert isinstance(info.value, InvalidNamespaceError)
    await _nothing_written(store)
    await store.batch([PutOp(("langgraph", "x"), "k", {"v": 1})])
    assert (await store.get(("langgraph", "x"), "k")).value == {"v": 1}
    assert [i.key for i in await store.search(("langgraph",))] == ["k"]
    assert await store.list_namespaces(prefix=("langgraph",)) == [("langgraph", "x")]
    await store.delete(("langgraph", "x"), "k")
    assert await store.get(("langgraph", "x"), "k") is None
    await store.put(("x", "langgraph"), "k", {"v": 2})  # only the root label is reserved
    assert (await store.get(("x", "langgraph"), "k")).value == {"v": 2}


async def test_sync_call_on_the_store_loop_is_an_invalid_state(store: Subject) -> None:
    """LangGraph's async stores raise asyncio.InvalidStateError there; ours too."""
    if store.flavour != "async":
        pytest.skip("only an async store has a loop of its own")
    await store.put(("a",), "k", {"v": 1})
    calls = [
        lambda: store.store.put(("a",), "k", {"v": 2}),
        lambda: store.store.get(("a",), "k"),
        lambda: store.store.delete(("a",), "k"),
        lambda: store.store.search(("a",)),
        lambda: store.store.list_namespaces(prefix=("a",)),
        lambda: store.store.batch([PutOp(("a",), "k", {"v": 3})]),
    ]
    for call in calls:
        with pytest.raises(asyncio.InvalidStateError) as info:
            call()
        assert isinstance(info.value, errors.SyncCallInEventLoopError)
        assert isinstance(info.value, errors.LangmemError)
    assert (await store.get(("a",), "k")).value == {"v": 1}


@pytest.mark.parametrize("namespace", BAD_LABELS)
async def test_invalid_labels_are_refused_before_batching(
    store: Subject, namespace: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As BaseStore's methods do: a bad label never reaches `batch`/`abatch`."""

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("batched an op with an invalid namespace")

    monkeypatch.setattr(store.store, "batch", never)
    monkeypatch.setattr(store.store, "abatch", never)
    calls = [
        lambda: store.get(namespace, "k"),
        lambda: store.delete(namespace, "k"),
        lambda: store.search(namespace),
        lambda: store.list_namespaces(prefix=namespace),
        lambda: store.list_namespaces(suffix=namespace),
    ]
    for call in calls:
        with pytest.raises(InvalidNamespaceError):
            await call()


async def test_invalid_keys(store: Subject) -> None:
    with pytest.raises(errors.InvalidKeyError, match="NUL"):
        await store.put(("a",), "k\x00", {"v": 1})
    with pytest.raises(errors.InvalidKeyError, match="str"):
        await store.batch([PutOp(("a",), 5, {"v": 1})])  # type: ignore[arg-type]
    await _nothing_written(store)


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        ({"when": datetime(2026, 1, 1)}, errors.ValueNotSerializableError, "datetime"),
        ({"s": {1, 2}}, errors.ValueNotSerializableError, "set"),
        ({"x": math.nan}, errors.InvalidValueError, "NaN"),
        ({"x": [1, math.inf]}, errors.InvalidValueError, r"NaN or an infinity"),
        ({"x": "a\x00b"}, errors.InvalidValueError, "NUL"),
        ({"k\x00": 1}, errors.InvalidValueError, "NUL"),
        ({"x": "\ud800"}, errors.InvalidValueError, "surrogate"),
        ({"x": b"bytes"}, errors.ValueNotSerializableError, "bytes"),
        (["not", "a", "dict"], errors.InvalidValueError, "dict"),
        ("text", errors.InvalidValueError, "dict"),
    ],
)
async def test_invalid_values_write_nothing(
    store: Subject, value: object, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match) as info:
        await store.batch([PutOp(("fine",), "k1", {"v": 1}), PutOp(("a",), "k", value)])  # type: ignore[arg-type]
    assert "a\x00b" not in str(info.value)
    await _nothing_written(store)


async def test_a_backslash_u0000_text_is_not_a_nul(store: Subject) -> None:
    await store.put(("a",), "k", {"x": "\\u0000 is six characters"})
    assert (await store.get(("a",), "k")).value == {"x": "\\u0000 is six characters"}


async def test_value_size_limit(make_store: MakeStore) -> None:
    store = await make_store(max_value_bytes=100)
    await store.put(("a",), "fits", {"x": "é" * 40})
    with pytest.raises(errors.ValueTooLargeError, match="max_value_bytes of 100"):
        await store.put(("a",), "big", {"x": "é" * 50})
    assert await store.get(("a",), "big") is None


async def test_default_size_limit_is_one_mebibyte(store: Subject) -> None:
    with pytest.raises(errors.ValueTooLargeError, match="1048576"):
        await store.put(("a",), "big", {"x": "x" * (1 << 20)})


@pytest.mark.parametrize(
    ("filter", "match"),
    [
        ({"a": {"$regex": "x"}}, "unknown filter operator '\\$regex'"),
        ({"a": {"$gt": [1]}}, "number or a string"),
        ({"a": {"$gt": True}}, "number or a string"),
        ({"a": {"$in": 3}}, "list"),
        ({"a": {"$exists": "yes"}}, "true or false"),
        ({"$nor": [{"a": 1}]}, r"unknown filter key '\$nor'.*\$and, \$or, \$not"),
        ({"$and": []}, "non-empty list of filter dicts"),
        ({"$or": {"a": 1}}, "non-empty list of filter dicts"),
        ({"$or": [1]}, "must be a dict"),
        ({"$not": [{"a": 1}]}, r"\$not needs a filter dict"),
        ({"a": {"$and": [{"b": 1}]}}, "unknown filter operator"),
        ({"a": {"$eq": 1, "b": 2}}, "mixes operators"),
        ({"a..b": 1}, "empty segment"),
        ({"": 1}, "non-empty"),
        ({"a": object()}, "JSON"),
    ],
)
async def test_bad_filters(store: Subject, filter: dict, match: str) -> None:
    with pytest.raises(errors.InvalidFilterError, match=match):
        await store.search(("a",), filter=filter)


@pytest.mark.parametrize(("limit", "offset"), [(-1, 0), (1, -1), (1.5, 0), (True, 0)])
async def test_bad_paging(store: Subject, limit: object, offset: object) -> None:
    with pytest.raises(errors.InvalidInputError):
        await store.search(("a",), limit=limit, offset=offset)
    with pytest.raises(errors.InvalidInputError):
        await store.list_namespaces(limit=limit, offset=offset)


async def test_bad_max_depth(store: Subject) -> None:
    with pytest.raises(errors.InvalidInputError, match="max_depth"):
        await store.list_namespaces(max_depth=0)


@pytest.mark.parametrize("ttl", [0, -1, math.inf, "1"])
async def test_bad_ttl(store: Subject, ttl: object) -> None:
    with pytest.raises(errors.InvalidInputError, match="ttl"):
        await store.put(("a",), "k", {"v": 1}, ttl=ttl)
    await _nothing_written(store)


async def test_unknown_op_type(store: Subject) -> None:
    with pytest.raises(errors.InvalidInputError, match="unknown operation"):
        await store.batch(["not an op"])


async def test_errors_share_one_root(store: Subject) -> None:
    with pytest.raises(errors.LangmemError):
        await store.put(("a",), "k", {"x": math.nan})

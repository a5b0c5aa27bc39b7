"""Semantic search: ranking with scores, max pooling, paging, vector upkeep on update."""

from __future__ import annotations

import math

import numpy as np
import pytest
from langgraph.store.base import PutOp

from langmem_prod import errors
from langmem_prod.embeddings import HashingEmbeddings
from tests.backends import Backend
from tests.contract.conftest import FakeClock, MakeStore, Subject

EMBED = HashingEmbeddings(dims=64)
INDEX = {"dims": 64, "embed": EMBED, "fields": ["text"]}
DOCS = {
    "pizza": "I love pizza with extra cheese",
    "pasta": "pasta carbonara is my favourite dinner",
    "tax": "the tax return is due in April",
    "dog": "my dog likes long walks in the park",
    "cheese": "a cheese board with grapes",
}


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def brute_force(query: str, docs: dict[str, list[str]]) -> list[tuple[str, float]]:
    """Rank items by their best text's cosine similarity (max pooling)."""
    q = EMBED.embed_query(query)
    scores = {
        k: max(cosine(q, v) for v in EMBED.embed_documents(texts)) for k, texts in docs.items()
    }
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


@pytest.fixture
async def vstore(vectors: Backend, make_store: MakeStore) -> Subject:
    store = await make_store(index=INDEX)
    await store.batch([PutOp(("docs",), k, {"text": t}) for k, t in DOCS.items()])
    return store


async def test_ranks_by_similarity_with_scores(vstore: Subject) -> None:
    results = await vstore.search(("docs",), query="pizza and cheese", limit=5)
    want = brute_force("pizza and cheese", {k: [t] for k, t in DOCS.items()})
    assert [r.key for r in results] == [k for k, _ in want]
    for result, (_, score) in zip(results, want, strict=True):
        assert result.score == pytest.approx(score, abs=1e-5)


async def test_pages_are_consistent(vstore: Subject) -> None:
    everything = await vstore.search(("docs",), query="cheese", limit=10)
    pages = [await vstore.search(("docs",), query="cheese", limit=2, offset=o) for o in (0, 2, 4)]
    assert [r.key for p in pages for r in p] == [r.key for r in everything]
    assert await vstore.search(("docs",), query="cheese", limit=2, offset=10) == []


async def test_query_with_filter_and_prefix(vstore: Subject) -> None:
    await vstore.put(("docs", "sub"), "pizza2", {"text": "pizza night", "kind": "event"})
    await vstore.put(("other",), "pizza3", {"text": "pizza pizza"})
    results = await vstore.search(("docs",), query="pizza", filter={"kind": "event"})
    assert [r.key for r in results] == ["pizza2"]
    assert "pizza3" not in {r.key for r in await vstore.search(("docs",), query="pizza")}


async def test_update_replaces_vectors(vstore: Subject) -> None:
    await vstore.put(("docs",), "pizza", {"text": "quarterly tax planning"})
    top = (await vstore.search(("docs",), query="pizza cheese", limit=1))[0]
    assert top.key != "pizza"
    found = {r.key: r.score for r in await vstore.search(("docs",), query="quarterly tax planning")}
    assert found["pizza"] == pytest.approx(1.0, abs=1e-5)


async def test_index_false_removes_vectors(vstore: Subject) -> None:
    await vstore.put(("docs",), "pizza", {"text": "I love pizza with extra cheese"}, index=False)
    assert "pizza" not in {r.key for r in await vstore.search(("docs",), query="pizza", limit=4)}
    assert (await vstore.search(("docs",), query="pizza"))[-1].key == "pizza"
    assert (await vstore.get(("docs",), "pizza")).value["text"].startswith("I love")
    await vstore.put(("docs",), "pizza", {"text": "I love pizza with extra cheese"})
    assert (await vstore.search(("docs",), query="pizza", limit=1))[0].key == "pizza"


async def test_unscored_items_follow_scored_ones(
    vectors: Backend, make_store: MakeStore, clock: FakeClock
) -> None:
    """As in InMemoryStore: items without vectors come last, score None, paged with the rest."""
    store = await make_store(index=INDEX, clock=clock)
    for key, text in DOCS.items():
        await store.put(("docs",), key, {"text": text})
        clock.advance(seconds=1)
    for key in ("plain1", "plain2", "plain3"):  # newest last
        await store.put(("docs",), key, {"text": "pizza pizza"}, index=False)
        clock.advance(seconds=1)
    await store.put(("docs",), "nofield", {"title": "pizza"})  # none of the indexed fields
    await store.put(("elsewhere",), "plain", {"text": "pizza"}, index=False)
    scored = [k for k, _ in brute_force("pizza", {k: [t] for k, t in DOCS.items()})]
    unscored = ["nofield", "plain3", "plain2", "plain1"]  # newest first

    everything = await store.search(("docs",), query="pizza", limit=20)
    assert [r.key for r in everything] == scored + unscored
    assert all(r.score is not None for r in everything[:5])
    assert [r.score for r in everything[5:]] == [None] * 4
    for limit in (1, 2, 3, 4, 10):
        pages = [
            await store.search(("docs",), query="pizza", limit=limit, offset=offset)
            for offset in range(0, 10, limit)
        ]
        assert [r.key for page in pages for r in page] == scored + unscored, limit
        assert all(len(page) <= limit for page in pages)
    assert await store.search(("docs",), query="pizza", limit=5, offset=9) == []
    filtered = await store.search(("docs",), query="pizza", filter={"title": "pizza"})
    assert [(r.key, r.score) for r in filtered] == [("nofield", None)]
    await store.put(("docs",), "plain2", {"text": "pizza pizza"})  # indexed now
    keys = [r.key for r in await store.search(("docs",), query="pizza", limit=20)]
    assert keys[-3:] == ["nofield", "plain3", "plain1"] and "plain2" in keys[:6]


async def test_only_unscored_items(vectors: Backend, make_store: MakeStore) -> None:
    store = await make_store(index=INDEX)
    await store.batch([PutOp(("u",), f"k{i}", {"text": "x"}, index=False) for i in range(3)])
    results = await store.search(("u",), query="x", limit=2, offset=1)
    assert len(results) == 2 and all(r.score is None for r in results)


async def test_per_put_fields_and_stale_fields_removed(vstore: Subject) -> None:
    value = {"text": "nothing relevant", "title": "pizza party"}
    await vstore.put(("docs",), "p", value, index=["text", "title"])
    assert (await vstore.search(("docs",), query="pizza party", limit=1))[0].key == "p"
    await vstore.put(("docs",), "p", value, index=["text"])
    scores = {r.key: r.score for r in await vstore.search(("docs",), query="pizza party")}
    assert scores["p"] == pytest.approx(
        cosine(EMBED.embed_query("pizza party"), EMBED.embed_query("nothing relevant")), abs=1e-5
    )


async def test_many_vectors_per_item_max_pooling_and_paging(
    vectors: Backend, make_store: MakeStore
) -> None:
    store = await make_store(index={"dims": 64, "embed": EMBED, "fields": ["chunks[*]"]})
    words = ["apple", "banana", "cherry", "grape", "lemon", "mango", "olive", "peach"]
    docs = {
        f"d{i}": [f"{words[(i + j) % 8]} {words[(i * j) % 8]} {j}" for j in range(12)]
        for i in range(15)
    }
    await store.batch([PutOp(("m",), k, {"chunks": v}) for k, v in docs.items()])
    want = brute_force("cherry lemon", docs)
    got = [
        r
        for o in range(0, 15, 4)
        for r in await store.search(("m",), query="cherry lemon", limit=4, offset=o)
    ]
    assert [r.key for r in got] == [k for k, _ in want]
    assert [r.score for r in got] == pytest.approx([s for _, s in want], abs=1e-5)


async def test_expired_items_are_not_ranked(
    vectors: Backend, make_store: MakeStore, clock: FakeClock
) -> None:
    store = await make_store(index=INDEX, clock=clock, start_sweeper=False)
    await store.put(("d",), "old", {"text": "pizza"}, ttl=1)
    await store.put(("d",), "new", {"text": "pizza dough"})
    clock.advance(minutes=2)
    assert [r.key for r in await store.search(("d",), query="pizza")] == ["new"]


async def test_query_without_index_is_a_plain_search(store: Subject) -> None:
    await store.put(("d",), "k", {"text": "pizza"})
    results = await store.search(("d",), query="pizza")
    assert [(r.key, r.score) for r in results] == [("k", None)]


async def test_embedding_errors_write_nothing(vectors: Backend, make_store: MakeStore) -> None:
    wrong = await make_store(index={"dims": 64, "embed": lambda texts: [[1.0, 0.0] for _ in texts]})
    with pytest.raises(errors.EmbeddingError, match="dims=64"):
        await wrong.put(("d",), "k", {"text": "x"})
    assert await wrong.get(("d",), "k") is None

    def broken(texts: list[str]) -> list[list[float]]:
        raise RuntimeError("model offline")

    failing = await make_store(index={"dims": 64, "embed": broken})
    with pytest.raises(errors.EmbeddingError, match="model offline"):
        await failing.put(("d",), "k", {"text": "x"})
    assert await failing.get(("d",), "k") is None


async def test_sqlite_text_fields_spelling(vectors: Backend, make_store: MakeStore) -> None:
    """SqliteStore's `text_fields` is taken for `fields`, not silently ignored."""
    store = await make_store(index={"dims": 64, "embed": EMBED, "text_fields": ["text"]})
    await store.put(("d",), "k", {"text": "pizza night", "other": "tax return due"})
    (hit,) = await store.search(("d",), query="pizza night")
    assert hit.score == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(errors.ConfigurationError, match="text_fields"):
        await make_store(index={**INDEX, "text_fields": ["other"]})


# Distance types ----------------------------------------------------------------------
# Vectors of very different lengths, so that cosine, l2 and inner product rank apart.
_RNG = np.random.default_rng(11)
_TABLE = {
    f"t{i}": (_RNG.normal(size=8) * _RNG.uniform(0.2, 1.5)).astype(np.float32) for i in range(40)
}
_QUERIES = ("t0", "t7", "t33")


def _table_embed(texts: list[str]) -> list[list[float]]:
    return [[float(x) for x in _TABLE[t]] for t in texts]


def _score(distance: str, q: np.ndarray, v: np.ndarray) -> float:
    """LangGraph's PostgresStore score for one pair of vectors (float64 arithmetic)."""
    q64, v64 = q.astype(np.float64), v.astype(np.float64)
    if distance == "l2":
        return -float(np.linalg.norm(q64 - v64))
    if distance == "inner_product":
        return float(q64 @ v64)
    return float(q64 @ v64 / (np.linalg.norm(q64) * np.linalg.norm(v64)))


def _reference(distance: str, query: str, docs: dict[str, list[str]]) -> list[tuple[str, float]]:
    scores = {
        key: max(_score(distance, _TABLE[query], _TABLE[t]) for t in texts)
        for key, texts in docs.items()
    }
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


@pytest.mark.parametrize("distance", ["cosine", "l2", "inner_product"])
async def test_distance_types_score_as_langgraph(
    vectors: Backend, make_store: MakeStore, distance: str
) -> None:
    index = {"dims": 8, "embed": _table_embed, "fields": ["a", "b"], "distance_type": distance}
    store = await make_store(index=index)
    # Two texts per item (max pooling); t0, t7 and t33 are also stored, so a query
    # meets itself (cosine 1, l2 0) and the best of two must win.
    docs = {f"k{i:02}": [f"t{i}", f"t{(i * 7 + 3) % 40}"] for i in range(40)}
    await store.batch([PutOp(("d",), k, {"a": a, "b": b}) for k, (a, b) in docs.items()])
    orders = set()
    for query in _QUERIES:
        want = _reference(distance, query, docs)
        got = await store.search(("d",), query=query, limit=40)
        assert [r.key for r in got] == [k for k, _ in want]
        assert [r.score for r in got] == pytest.approx([s for _, s in want], abs=1e-5)
        page = await store.search(("d",), query=query, limit=5, offset=3)
        assert [r.key for r in page] == [k for k, _ in want[3:8]]
        orders.add(tuple(k for k, _ in want))
    assert len(orders) == len(_QUERIES)


def test_the_three_types_rank_apart() -> None:
    """The data above tells the types apart: a wrong operator would rank differently."""
    docs = {f"k{i:02}": [f"t{i}"] for i in range(40)}
    ranks = {
        d: [k for k, _ in _reference(d, "t0", docs)] for d in ("cosine", "l2", "inner_product")
    }
    assert len({tuple(r) for r in ranks.values()}) == 3


async def test_unknown_distance_type_is_refused_at_construction(
    backend: Backend, make_store: MakeStore
) -> None:
    for wrong in ("hamming", "euclidean", "COSINE", None, 2):
        with pytest.raises(errors.ConfigurationError, match="distance_type"):
            await make_store(index={**INDEX, "distance_type": wrong}, setup=False)


async def test_changing_the_distance_type_is_refused_at_setup(
    vectors: Backend, make_store: MakeStore
) -> None:
    index = {"dims": 8, "embed": _table_embed, "fields": ["a"]}
    first = await make_store(index={**index, "distance_type": "inner_product"})
    await first.put(("d",), "k", {"a": "t1"})
    await make_store(index={**index, "distance_type": "inner_product"})  # same: fine
    for other in ("cosine", "l2"):
        changed = await make_store(index={**index, "distance_type": other}, setup=False)
        with pytest.raises(errors.ConfigurationError, match="inner_product"):
            await changed.setup()
    results = await first.search(("d",), query="t1")
    assert [r.score for r in results] == pytest.approx([float(_TABLE["t1"] @ _TABLE["t1"])])

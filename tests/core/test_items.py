"""Items built from rows equal LangGraph's own, with every slot set."""

from __future__ import annotations

from datetime import UTC, datetime

from langgraph.store.base import Item, SearchItem

from langmem_prod.store._ops import item_from_row, search_item_from_row

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ROW = ("a.b", "k", '{"x": [1, 2]}', T0, T0, False)


def all_slots(cls: type) -> set[str]:
    return {
        s for klass in cls.__mro__ for s in getattr(klass, "__slots__", ()) if s != "__weakref__"
    }


def test_item_from_row_matches_langgraph() -> None:
    built = item_from_row(("a", "b"), ROW)
    assert built == Item(
        value={"x": [1, 2]}, key="k", namespace=("a", "b"), created_at=T0, updated_at=T0
    )
    assert all(hasattr(built, slot) for slot in all_slots(Item))
    assert built.dict()["namespace"] == ["a", "b"]


def test_search_item_from_row_matches_langgraph() -> None:
    built = search_item_from_row(ROW, 0.5)
    expected = SearchItem(("a", "b"), "k", {"x": [1, 2]}, T0, T0, score=0.5)
    assert built == expected and built.score == 0.5
    assert all(hasattr(built, slot) for slot in all_slots(SearchItem))
    assert built.dict() == expected.dict()

"""The namespace codec and match patterns, with no I/O."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from langgraph.store.base import GetOp, ListNamespacesOp, MatchCondition, PutOp, SearchOp

from langmem_prod import errors
from langmem_prod.store._namespace import (
    compile_match,
    decode_namespace,
    descendant_range,
    encode_namespace,
    validate_op,
)
from langmem_prod.store._stored import validate_prefix
from tests import reference

labels = st.text(
    st.characters(blacklist_characters=".\x00", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=5,
)
namespaces = st.lists(labels, min_size=1, max_size=5).map(tuple)


@given(namespaces)
def test_codec_round_trips(namespace: tuple[str, ...]) -> None:
    assert decode_namespace(encode_namespace(namespace)) == namespace


@given(namespaces, namespaces)
def test_descendant_range_holds_exactly_the_descendants(prefix: tuple, other: tuple) -> None:
    low, high = descendant_range(encode_namespace(prefix))
    text = encode_namespace(other)
    # Compare as UTF-8 bytes, the order of COLLATE "C".
    inside = low.encode() <= text.encode() < high.encode()
    is_descendant = len(other) > len(prefix) and other[: len(prefix)] == prefix
    assert inside == is_descendant


pattern_labels = st.sampled_from(["a", "b", "*"])
patterns = st.lists(pattern_labels, max_size=3).map(tuple)
small_namespaces = st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=4).map(tuple)


@given(small_namespaces, patterns, patterns)
def test_compiled_match_agrees_with_the_reference(ns: tuple, prefix: tuple, suffix: tuple) -> None:
    match = compile_match((MatchCondition("prefix", prefix), MatchCondition("suffix", suffix)))
    expected = reference.namespace_matches(ns, "prefix", prefix) and reference.namespace_matches(
        ns, "suffix", suffix
    )
    assert match.matches(ns) == expected
    if expected:
        assert ns[: len(match.fixed_prefix)] == match.fixed_prefix


@pytest.mark.parametrize(
    "op",
    [
        GetOp(("a.b",), "k"),
        SearchOp(("",)),
        PutOp(("x", "y\x00"), "k", {}),
        ListNamespacesOp(match_conditions=(MatchCondition("suffix", ("a.b",)),)),
    ],
)
def test_invalid_labels(op: object) -> None:
    with pytest.raises(errors.InvalidNamespaceError):
        validate_op(op)  # type: ignore[arg-type]


def test_unknown_match_type() -> None:
    with pytest.raises(errors.InvalidInputError, match="match_type"):
        validate_op(ListNamespacesOp(match_conditions=(MatchCondition("infix", ("a",)),)))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "op",
    [
        PutOp("users", "k", {"v": 1}),  # type: ignore[arg-type]
        GetOp("users", "k"),  # type: ignore[arg-type]
        SearchOp("users"),  # type: ignore[arg-type]
    ],
)
def test_a_str_namespace_is_refused_not_split(op: object) -> None:
    with pytest.raises(errors.InvalidNamespaceError, match=r"pass a tuple, e\.g\. \('users',\)"):
        validate_op(op)  # type: ignore[arg-type]


def test_a_str_match_path_is_one_label_never_split() -> None:
    """LangGraph's own tests write `MatchCondition("suffix", "public")`."""
    for kind in ("prefix", "suffix"):
        as_text = compile_match((MatchCondition(kind, "public"),))  # type: ignore[arg-type]
        assert as_text == compile_match((MatchCondition(kind, ("public",)),))
        assert as_text.matches(("public",)) and not as_text.matches(tuple("public"))


def test_a_str_prefix_of_stored_values_is_refused() -> None:
    with pytest.raises(errors.InvalidNamespaceError, match="pass a tuple"):
        validate_prefix("tenants")  # type: ignore[arg-type]
    assert validate_prefix(["tenants", "acme"]) == ("tenants", "acme")

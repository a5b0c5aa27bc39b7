"""Hostile input gets the project's errors, before any I/O, and writes nothing.

Every store (PostgreSQL as an ordinary role, Redis, Redis Cluster; sync and async),
`TenantStore` and both chat histories are attacked with values nested 10,000 deep
(dicts, lists, a cycle), lone surrogates in every string a caller passes, and the
labels that used to name the partition of "no user".
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.store.base import GetOp, ListNamespacesOp, MatchCondition, PutOp, SearchOp

from langmem_prod import errors
from langmem_prod.security import Redactor
from langmem_prod.store._namespace import MAX_COUNT
from langmem_prod.store._ttl import MAX_TTL_MINUTES
from langmem_prod.store._values import MAX_VALUE_DEPTH
from langmem_prod.tenancy import (
    PostgresTenantRegistry,
    RedisTenantRegistry,
    Tenant,
    TenantRegistry,
    TenantStore,
)
from tests.backends import Backend, unique_name
from tests.security.limits_support import backend, call, nested, server

__all__ = ["backend", "server"]  # fixtures

S = "\ud800"  # a lone surrogate: UTF-8 cannot encode it
DEEP = 10_000


def cyclic() -> dict[str, Any]:
    value: dict[str, Any] = {"a": 1}
    value["self"] = value
    return value


@pytest.fixture
async def store(backend: Backend, flavour: str) -> AsyncIterator[Any]:
    made = await backend.make(flavour, backend.place(), start_sweeper=False)
    await (made.setup() if flavour == "async" else asyncio.to_thread(made.setup))
    yield made
    await (made.aclose() if flavour == "async" else asyncio.to_thread(made.close))


async def _empty(store: Any, backend: Backend, flavour: str) -> None:
    assert await backend.stored_items(store) == 0
    assert await call(store, flavour, "list_namespaces") == []


# -- depth -----------------------------------------------------------------------------


def test_the_depth_limit_is_orjsons() -> None:
    """The limit costs the usual put nothing only while it is orjson's own: pin it."""
    orjson.dumps(nested(MAX_VALUE_DEPTH, leaf=1))
    with pytest.raises(orjson.JSONEncodeError):
        orjson.dumps(nested(MAX_VALUE_DEPTH + 1, leaf=1))


@pytest.mark.parametrize(
    "value",
    [
        nested(DEEP),
        {"v": nested(DEEP, kind="list")},
        {"ok": 1, "deep": nested(DEEP), "when": object()},  # another fault too
        cyclic(),
        nested(MAX_VALUE_DEPTH + 1),
    ],
    ids=["dict", "list", "deep-and-unserialisable", "cycle", "one-too-deep"],
)
async def test_deep_values_are_refused_and_write_nothing(
    store: Any, backend: Backend, flavour: str, value: Any
) -> None:
    ops = [PutOp(("fine",), "k0", {"v": 1}), PutOp(("fine",), "k1", value)]
    with pytest.raises(errors.InvalidValueError, match=f"more than {MAX_VALUE_DEPTH} levels"):
        await call(store, flavour, "batch", ops)
    with pytest.raises(errors.InvalidValueError, match=str(MAX_VALUE_DEPTH)):
        await call(store, flavour, "put", ("fine",), "k1", value)
    await _empty(store, backend, flavour)


async def test_values_at_the_limit_are_kept_exactly(
    store: Any, backend: Backend, flavour: str
) -> None:
    value = {"kind": "deep", "v": nested(MAX_VALUE_DEPTH - 1, kind="list", leaf=7)}
    await call(store, flavour, "put", ("deep",), "k", value)
    item = await call(store, flavour, "get", ("deep",), "k")
    assert item.value == value
    found = await call(store, flavour, "search", ("deep",), filter={"kind": "deep"})
    assert [i.value for i in found] == [value]


async def test_deep_filter_operands_are_refused(store: Any, flavour: str) -> None:
    for spec in ({"a": nested(DEEP)}, {"a": {"$in": [nested(DEEP, kind="list")]}}):
        with pytest.raises(errors.InvalidFilterError, match="nests more than"):
            await call(store, flavour, "search", ("a",), filter=spec)


# -- lone surrogates -------------------------------------------------------------------

Attack = Callable[[Any, str], Awaitable[Any]]


def _op(op: Any) -> Attack:
    return lambda store, flavour: call(store, flavour, "batch", [op])


SURROGATE_ATTACKS: list[tuple[str, Attack, type[Exception]]] = [
    ("put label", _op(PutOp(("a" + S,), "k", {"v": 1})), errors.InvalidNamespaceError),
    ("get label", _op(GetOp(("a", S), "k")), errors.InvalidNamespaceError),
    ("delete label", _op(PutOp((S,), "k", None)), errors.InvalidNamespaceError),
    ("search prefix", _op(SearchOp(("a" + S,))), errors.InvalidNamespaceError),
    (
        "list prefix",
        _op(ListNamespacesOp(match_conditions=(MatchCondition("prefix", (S,)),))),
        errors.InvalidNamespaceError,
    ),
    (
        "list suffix",
        _op(ListNamespacesOp(match_conditions=(MatchCondition("suffix", ("a", S)),))),
        errors.InvalidNamespaceError,
    ),
    ("put key", _op(PutOp(("a",), "k" + S, {"v": 1})), errors.InvalidKeyError),
    ("get key", _op(GetOp(("a",), S)), errors.InvalidKeyError),
    ("delete key", _op(PutOp(("a",), S, None)), errors.InvalidKeyError),
    ("filter path", _op(SearchOp(("a",), filter={"x" + S: 1})), errors.InvalidFilterError),
    ("filter value", _op(SearchOp(("a",), filter={"x": "v" + S})), errors.InvalidFilterError),
    (
        "filter $in",
        _op(SearchOp(("a",), filter={"x": {"$in": ["ok", S]}})),
        errors.InvalidFilterError,
    ),
    (
        "filter object key",
        _op(SearchOp(("a",), filter={"x": {"$eq": {S: 1}}})),
        errors.InvalidFilterError,
    ),
    ("filter $gt", _op(SearchOp(("a",), filter={"x": {"$gt": S}})), errors.InvalidFilterError),
    ("query", _op(SearchOp(("a",), query="q" + S)), errors.InvalidInputError),
    ("value", _op(PutOp(("a",), "k", {"v": ["ok", S]})), errors.InvalidValueError),
    ("value key", _op(PutOp(("a",), "k", {S: 1})), errors.InvalidValueError),
    ("index field", _op(PutOp(("a",), "k", {"v": 1}, index=["v" + S])), errors.InvalidInputError),
]


@pytest.mark.parametrize(
    ("attack", "error"),
    [(a, e) for _, a, e in SURROGATE_ATTACKS],
    ids=[name for name, _, _ in SURROGATE_ATTACKS],
)
async def test_lone_surrogates_get_the_projects_errors(
    store: Any, backend: Backend, flavour: str, attack: Attack, error: type[Exception]
) -> None:
    with pytest.raises(error, match="surrogate") as raised:
        await attack(store, flavour)
    assert isinstance(raised.value, errors.InvalidInputError)
    await _empty(store, backend, flavour)


# Every code point, surrogates included, and the characters the rules single out.
any_text = st.text(
    st.one_of(st.characters(exclude_categories=()), st.sampled_from(".*\x00_")), max_size=6
)


@pytest.fixture
def sync_store(server: Any) -> Any:
    made = Backend(server)
    with made.sync_store(made.place()) as store:
        store.setup()
        yield store
    asyncio.run(made.cleanup())


@pytest.mark.slow
@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(label=any_text, key=any_text, text=any_text)
def test_any_text_is_kept_exactly_or_refused_with_the_projects_error(
    sync_store: Any, label: str, key: str, text: str
) -> None:
    namespace = ("prop", label)
    ops = [
        PutOp(namespace, key, {"t": text, text: 1}),
        GetOp(namespace, key),
        SearchOp(("prop",), filter={"t": text}, query=text),
        ListNamespacesOp(match_conditions=(MatchCondition("suffix", (label,)),)),
    ]
    for op in ops:
        try:
            sync_store.batch([op])
        except errors.InvalidInputError:
            continue  # the project's error, before anything was written
    try:
        item = sync_store.get(namespace, key)
    except errors.InvalidInputError:
        return
    if item is not None:
        assert item.value == {"t": text, text: 1}
        assert {(i.namespace, i.key) for i in sync_store.search(namespace)} == {(namespace, key)}
        sync_store.delete(namespace, key)


# -- numbers out of every backend's range ----------------------------------------------

OUT_OF_RANGE: list[tuple[str, Attack]] = [
    ("limit", lambda st, fl: call(st, fl, "search", ("a",), limit=2**31)),
    ("offset", lambda st, fl: call(st, fl, "search", ("a",), offset=10**30)),
    ("listing limit", lambda st, fl: call(st, fl, "list_namespaces", limit=2**63)),
    ("max_depth", lambda st, fl: call(st, fl, "list_namespaces", max_depth=2**31)),
    ("ttl", lambda st, fl: call(st, fl, "put", ("a",), "k", {"v": 1}, ttl=1e300)),
    ("ttl int", lambda st, fl: call(st, fl, "put", ("a",), "k", {"v": 1}, ttl=10**400)),
    ("ttl inf", lambda st, fl: call(st, fl, "put", ("a",), "k", {"v": 1}, ttl=math.inf)),
]


@pytest.mark.parametrize("attack", [a for _, a in OUT_OF_RANGE], ids=[n for n, _ in OUT_OF_RANGE])
async def test_numbers_out_of_range_are_refused_before_any_io(
    store: Any, backend: Backend, flavour: str, attack: Attack
) -> None:
    with pytest.raises(errors.InvalidInputError, match=r"at most|from"):
        await attack(store, flavour)
    await _empty(store, backend, flavour)


async def test_the_longest_ttl_and_the_largest_counts_work(store: Any, flavour: str) -> None:
    await call(store, flavour, "put", ("a",), "k", {"v": 1}, ttl=MAX_TTL_MINUTES)
    assert (await call(store, flavour, "get", ("a",), "k")).value == {"v": 1}
    found = await call(store, flavour, "search", ("a",), limit=MAX_COUNT, offset=0)
    assert [i.key for i in found] == ["k"]
    listed = await call(store, flavour, "list_namespaces", limit=MAX_COUNT, max_depth=MAX_COUNT)
    assert listed == [("a",)]


# -- TenantStore -----------------------------------------------------------------------


@pytest.fixture
async def tenants(
    backend: Backend, store: Any, flavour: str
) -> AsyncIterator[tuple[Any, TenantRegistry]]:
    place = backend.place()
    registry: TenantRegistry
    if backend.kind == "postgres":
        registry = PostgresTenantRegistry(await backend._pg_source("sync"), schema=place)
    else:
        registry = RedisTenantRegistry(backend._redis_client("sync"), prefix=place)
    await asyncio.to_thread(registry.setup)
    await asyncio.to_thread(registry.create, "acme", pii="mask")  # redacts every value
    await asyncio.to_thread(registry.create, "vault", isolation="strict")
    yield store, registry


async def test_tenant_store_checks_depth_before_redacting_and_writes_nothing(
    tenants: tuple[Any, TenantRegistry], backend: Backend, flavour: str
) -> None:
    store, registry = tenants
    acme = TenantStore(store, registry, "acme", user_id="ada", refresh_seconds=0)
    for value in (nested(DEEP), {"v": nested(DEEP, kind="list")}, cyclic()):
        # The redactor recurses: reached first, it would raise RecursionError.
        with pytest.raises(errors.InvalidValueError, match=f"more than {MAX_VALUE_DEPTH}"):
            await call(
                acme, flavour, "batch", [PutOp(("n",), "ok", {"v": 1}), PutOp(("n",), "k", value)]
            )
    with pytest.raises(errors.InvalidValueError, match="must be a dict"):
        await call(acme, flavour, "batch", [PutOp(("n",), "k", ["not", "a", "dict"])])
    assert await backend.stored_items(store) == 0
    await call(acme, flavour, "put", ("n",), "k", {"mail": "ada@example.com"})
    assert (await call(acme, flavour, "get", ("n",), "k")).value == {"mail": "[EMAIL]"}


@pytest.mark.parametrize("bad", ["_", "*", "", "a.b", "nul\x00", "x" + S, 7])
def test_agent_and_user_ids_cannot_name_another_partition(bad: Any) -> None:
    tenant = Tenant("acme", "Acme", "free", overrides={"isolation": "strict"})
    for field in ("agent_id", "user_id"):
        with pytest.raises(errors.InvalidInputError, match=field):
            tenant.scope(**{field: bad})
        with pytest.raises(errors.InvalidInputError, match=field):
            TenantStore(object(), object(), "acme", **{field: bad})  # type: ignore[arg-type]
    assert tenant.scope() == ("tenants", "acme", "_", "_")


async def test_the_partition_of_no_user_is_nobody_elses(
    tenants: tuple[Any, TenantRegistry], flavour: str
) -> None:
    store, registry = tenants

    def scoped(**ids: Any) -> TenantStore:
        return TenantStore(store, registry, "vault", refresh_seconds=0, **ids)

    nobody = scoped()  # strict isolation: no agent, no user
    await call(nobody, flavour, "put", ("notes",), "n", {"who": "nobody"})
    for ids in ({"user_id": "ada"}, {"agent_id": "bot"}, {"agent_id": "bot", "user_id": "ada"}):
        other = scoped(**ids)
        assert await call(other, flavour, "get", ("notes",), "n") is None
        assert await call(other, flavour, "search", ()) == []
        assert await call(other, flavour, "list_namespaces") == []
    listed = await call(nobody, flavour, "list_namespaces")
    assert listed == [("notes",)]


# -- chat histories --------------------------------------------------------------------


@pytest.fixture
async def history_of(backend: Backend, flavour: str) -> Callable[..., Awaitable[Any]]:
    place = backend.place()
    if backend.kind == "postgres":
        setup = await backend.make_history("sync", place, "setup")
        await asyncio.to_thread(setup.setup)

    async def make(session: str = "s1", **kwargs: Any) -> Any:
        return await backend.make_history(flavour, place, session, **kwargs)

    return make


async def test_history_ids_with_lone_surrogates_are_refused(
    history_of: Callable[..., Awaitable[Any]],
) -> None:
    for kwargs in ({"session": "s" + S}, {"tenant_id": S}, {"user_id": "u" + S}):
        with pytest.raises(errors.InvalidInputError, match="lone surrogates"):
            await history_of(**kwargs)


async def test_hostile_messages_get_the_projects_errors_and_write_nothing(
    history_of: Callable[..., Awaitable[Any]], flavour: str
) -> None:
    for redactor in (None, Redactor()):
        history = await history_of(unique_name(), tenant_id="acme", redactor=redactor)
        attacks: list[tuple[list[Any], str]] = [
            ([HumanMessage("ok"), HumanMessage("hi " + S)], "cannot be stored exactly"),
            ([HumanMessage([{"type": "text", "text": "x", "deep": nested(DEEP)}])], "254"),
            ([AIMessage("x", additional_kwargs={"a": nested(DEEP, kind="list")})], "254"),
            ([AIMessage("x", response_metadata={"c": cyclic()})], "254"),
        ]
        for batch, match in attacks:
            with pytest.raises(errors.InvalidMessageError, match=match):
                await call(history, flavour, "add_messages", batch)
        for state in (nested(DEEP), cyclic(), {"s": S}):
            with pytest.raises(errors.InvalidInputError):
                await call(history, flavour, "save_state", state)
        assert await call(history, flavour, "load") == ([], {})


async def test_history_numbers_out_of_range_are_refused(
    history_of: Callable[..., Awaitable[Any]], flavour: str
) -> None:
    for kwargs in ({"ttl": 1e300}, {"ttl": 10**400}, {"max_messages": 2**31}):
        with pytest.raises(errors.ConfigurationError, match=r"at most|from"):
            await history_of(**kwargs)
    history = await history_of(unique_name(), ttl=MAX_TTL_MINUTES * 60, max_messages=MAX_COUNT)
    for window in ({"last": 2**31}, {"offset": 10**30}, {"limit": 2**40}):
        with pytest.raises(errors.InvalidInputError, match="from 0 to"):
            await call(history, flavour, "get_messages", **window)
    await call(history, flavour, "add_messages", [HumanMessage("kept for a century")])
    got = await call(history, flavour, "get_messages", last=MAX_COUNT)
    assert [m.content for m in got] == ["kept for a century"]
    assert await history_of(unique_name(), ttl=math.inf)  # infinite: kept forever


async def test_a_message_at_the_depth_limit_round_trips(
    history_of: Callable[..., Awaitable[Any]], flavour: str
) -> None:
    history = await history_of(unique_name())
    # Stored as {"type", "data": {"additional_kwargs": {"a": ...}}}: 3 levels of envelope.
    fits = AIMessage("x", additional_kwargs={"a": nested(MAX_VALUE_DEPTH - 3, leaf=1)})
    await call(history, flavour, "add_messages", [fits])
    assert await call(history, flavour, "get_messages") == [fits]
    over = AIMessage("x", additional_kwargs={"a": nested(MAX_VALUE_DEPTH - 2, leaf=1)})
    with pytest.raises(errors.InvalidMessageError, match=f"more than {MAX_VALUE_DEPTH}"):
        await call(history, flavour, "add_messages", [over])

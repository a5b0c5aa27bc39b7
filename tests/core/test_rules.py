"""Pure rules: values, filters, TTLs, retries, schedules, the access buffer, batch plans."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from langgraph.store.base import GetOp, ListNamespacesOp, PutOp, SearchOp

from langmem_prod import errors
from langmem_prod.embeddings import HashingEmbeddings
from langmem_prod.store._access import AccessBuffer
from langmem_prod.store._filter import parse_filter
from langmem_prod.store._index import index_settings, item_texts
from langmem_prod.store._maintenance import MaintenanceSchedule
from langmem_prod.store._ops import plan_batch
from langmem_prod.store._retry import RetryPolicy
from langmem_prod.store._ttl import check_ttl, expires_at, ttl_settings
from langmem_prod.store._values import encode_value

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_encode_value_is_compact_and_checks_size_in_bytes() -> None:
    assert encode_value({"a": "é"}, max_bytes=100, namespace=("a",), key="k") == '{"a":"é"}'
    with pytest.raises(errors.ValueTooLargeError):
        encode_value({"a": "é" * 10}, max_bytes=20, namespace=("a",), key="k")
    encode_value({"a": "e" * 10}, max_bytes=20, namespace=("a",), key="k")


@pytest.mark.parametrize("text", ["\x00", "a\x00", "\\\x00"])
def test_nul_detection(text: str) -> None:
    with pytest.raises(errors.InvalidValueError, match="NUL"):
        encode_value({"a": text}, max_bytes=100, namespace=("a",), key="k")


@pytest.mark.parametrize("text", ["\\u0000", "\\\\u0000 x", "u0000"])
def test_escaped_backslashes_are_not_nul(text: str) -> None:
    encode_value({"a": text}, max_bytes=100, namespace=("a",), key="k")


def test_error_messages_never_contain_values() -> None:
    secret = "s3cr3t-value"
    for bad in ({"x": secret, "n": math.nan}, {"x": secret, "d": datetime.now()}):
        with pytest.raises(errors.InvalidValueError) as info:
            encode_value(bad, max_bytes=100, namespace=("a",), key="k")
        assert secret not in str(info.value)


def test_filter_plain_dict_means_whole_value_equality() -> None:
    (condition,) = parse_filter({"meta": {"a": 1}})
    assert (condition.op, condition.operand) == ("$eq", {"a": 1})


def test_ttl_settings_and_arithmetic() -> None:
    settings = ttl_settings({"default_ttl": 2, "refresh_on_read": False})
    assert (settings.default_ttl, settings.refresh_on_read, settings.sweep_interval_minutes) == (
        2.0,
        False,
        5.0,
    )
    assert expires_at(T0, 1.5) == T0 + timedelta(seconds=90)
    assert expires_at(T0, None) is None
    assert check_ttl(None) is None
    with pytest.raises(errors.InvalidInputError):
        check_ttl(math.nan)


def test_retry_delays_are_capped_and_jittered() -> None:
    policy = RetryPolicy(attempts=6, base_delay=0.5, max_delay=1.0)
    assert list(policy.delays(lambda: 1.0)) == [0.5, 1.0, 1.0, 1.0, 1.0]
    assert list(policy.delays(lambda: 0.0)) == [0.0] * 5
    with pytest.raises(errors.ConfigurationError):
        RetryPolicy(attempts=0)


def test_schedule() -> None:
    schedule = MaintenanceSchedule(flush_interval=1.0, sweep_interval=60.0, started=0.0)
    assert schedule.delay(0.0) == 60.0
    schedule.note_reads(5.0, pending=2, full=False)
    assert schedule.delay(5.0) == 1.0
    schedule.note_reads(5.5, pending=3, full=False)  # the first read sets the deadline
    assert not schedule.flush_due(5.9) and schedule.flush_due(6.0) and not schedule.flush_due(6.0)
    schedule.note_reads(7.0, pending=10, full=True)
    assert schedule.flush_due(7.0)
    assert schedule.sweep_due(60.0) and not schedule.sweep_due(61.0) and schedule.sweep_due(120.0)
    schedule.set_sweep_interval(None, 130.0)
    assert not schedule.sweep_due(10_000.0) and schedule.delay(130.0) == 3600.0


def test_access_buffer_merges_reads() -> None:
    buffer = AccessBuffer(max_items=3)
    assert buffer.record([("a", "1", False)], T0)  # was empty: wake the flusher
    assert not buffer.record([("a", "2", False)], T0)
    assert not buffer.record([("a", "1", True)], T0 + timedelta(seconds=1))
    assert not buffer.record([("a", "1", False)], T0)
    assert buffer.record([("a", "3", False)], T0)  # now full: wake it again
    assert buffer.full
    records = {r.key: r for r in buffer.drain()}
    assert (records["1"].hits, records["1"].at, records["1"].refresh) == (
        3,
        T0 + timedelta(seconds=1),
        True,
    )
    assert (records["2"].hits, records["2"].refresh) == (1, False)
    assert len(buffer) == 0 and buffer.drain() == []


def test_plan_groups_validates_and_orders_writes() -> None:
    plan = plan_batch(
        [
            PutOp(("b",), "2", {"v": 1}),
            GetOp(("a",), "1"),
            PutOp(("a",), "9", {"v": 1}),
            SearchOp(("a",), {"x": {"$gt": 1}}),
            ListNamespacesOp(max_depth=1),
            PutOp(("b",), "2", None),
        ],
        index=None,
        max_value_bytes=100,
    )
    assert plan.size == 6
    assert [(w.prefix, w.key, w.value_json) for w in plan.writes] == [
        ("a", "9", '{"v":1}'),
        ("b", "2", None),
    ]
    assert [g.pos for g in plan.gets] == [1] and [s.pos for s in plan.searches] == [3]
    assert plan.lists[0].max_depth == 1


def test_plan_extracts_texts_to_embed() -> None:
    index = index_settings({"dims": 8, "embed": HashingEmbeddings(8), "fields": ["a", "b[*]"]})
    assert index is not None
    plan = plan_batch(
        [
            PutOp(("n",), "k", {"a": "x", "b": ["y", "x"]}),
            PutOp(("n",), "k2", {"a": "z"}, index=False),
        ],
        index=index,
        max_value_bytes=100,
    )
    assert plan.writes[0].texts == (("a", "x"), ("b[*].0", "y"), ("b[*].1", "x"))
    assert plan.writes[1].texts == ()
    assert plan.put_texts == ["x", "y"]
    assert item_texts(index, {"a": 1}, ["a"]) == [("a", "1")]
    with pytest.raises(errors.InvalidInputError):
        item_texts(index, {"a": 1}, "a")  # type: ignore[arg-type]

"""LangGraph's own store test files pass against our four stores, with zero failures.

Opt-in (about half an hour on two cores): `LANGMEM_LANGGRAPH_SUITES=1 pytest
tests/langgraph_suites`. The files come from PyPI sdists or `LANGGRAPH_SOURCE`; without
either the tests skip and say why. The stores run on the embedded PostgreSQL (pgvector)
and Valkey. Deselected tests and their reasons: `langmem_suite_plugin.DESELECTED`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from langmem_prod.embedded import EmbeddedPostgres, EmbeddedRedis
from tests.langgraph_suites._run import STORES, files_for, run_file
from tests.langgraph_suites._sources import SourceUnavailable, lay_out

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

CASES = [(store, suite, file) for store in STORES for suite, file in files_for(store)]


@pytest.fixture(scope="module")
def suites_root() -> Iterator[Path]:
    if not os.environ.get("LANGMEM_LANGGRAPH_SUITES"):
        pytest.skip(
            "LangGraph's own store suites take about half an hour: set "
            "LANGMEM_LANGGRAPH_SUITES=1, or run `python -m tests.langgraph_suites`"
        )
    try:
        roots = lay_out()
    except SourceUnavailable as exc:
        pytest.skip(f"LangGraph's store test files cannot be obtained: {exc}")
    root = next(iter(roots.values())).parent
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.timeout(3600)
@pytest.mark.parametrize(("store", "suite", "file"), CASES)
def test_langgraph_suite_passes(
    suites_root: Path,
    embedded_pg: EmbeddedPostgres,
    embedded_valkey: EmbeddedRedis,
    store: str,
    suite: str,
    file: str,
) -> None:
    outcome = run_file(
        suites_root, store, suite, file, pg_url=embedded_pg.url, redis_url=embedded_valkey.url
    )
    assert outcome.exit_code in (0, 1), outcome.output[-4000:]
    assert outcome.passed, outcome.output[-4000:]
    assert outcome.failed == [], outcome.output[-8000:]

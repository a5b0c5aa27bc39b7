"""Architecture rules: the core does no I/O, and sync/async stores match."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import langmem_prod
from langmem_prod import AsyncPostgresStore, PostgresStore

CORE = [
    "store/_namespace.py",
    "store/_filter.py",
    "store/_values.py",
    "store/_ttl.py",
    "store/_ops.py",
    "store/_index.py",
    "store/_access.py",
    "store/_maintenance.py",
    "store/_retry.py",
    "store/_effects.py",
    "store/postgres/_gen.py",
    "store/postgres/_sql.py",
    "store/postgres/_filter_sql.py",
    "store/postgres/_schema.py",
    "store/redis/_quota.py",
    "store/_tenant.py",
    "store/_transform.py",
    "store/_stored.py",
    "store/_usage.py",
    "store/postgres/_stored.py",
    "store/redis/_stored.py",
]
BANNED = {"asyncio", "threading", "redis", "socket", "time", "psycopg_pool"}
ALLOWED_PSYCOPG = {"psycopg.sql"}  # identifier quoting only, no connections


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(
                node.module + "".join(f".{a.name}" for a in node.names if node.module == "psycopg")
            )
    return names


def test_core_modules_do_no_io() -> None:
    root = Path(langmem_prod.__file__).parent
    for relative in CORE:
        for name in imported_modules(root / relative):
            top = name.split(".")[0]
            assert top not in BANNED, f"{relative} imports {name}"
            if top == "psycopg":
                assert name in ALLOWED_PSYCOPG, f"{relative} imports {name}"


def test_modules_stay_small() -> None:
    root = Path(langmem_prod.__file__).parent
    for path in root.rglob("*.py"):
        assert len(path.read_text().splitlines()) <= 600, path


PAIRS = {
    "batch": "abatch",
    "get": "aget",
    "put": "aput",
    "delete": "adelete",
    "search": "asearch",
    "list_namespaces": "alist_namespaces",
    "flush": "aflush",
    "close": "aclose",
}
SAME_NAME = ["setup", "sweep_ttl", "start_ttl_sweeper", "stop_ttl_sweeper", "from_conn_string"]


def params(fn: object) -> list[tuple[str, object]]:
    return [(p.name, p.default) for p in inspect.signature(fn).parameters.values()]  # type: ignore[arg-type]


def test_sync_and_async_stores_match() -> None:
    assert params(PostgresStore.__init__) == params(AsyncPostgresStore.__init__)
    for sync_name, async_name in PAIRS.items():
        assert params(getattr(PostgresStore, sync_name)) == params(
            getattr(AsyncPostgresStore, async_name)
        )
        assert inspect.iscoroutinefunction(getattr(AsyncPostgresStore, async_name))
    for name in SAME_NAME:
        assert params(getattr(PostgresStore, name)) == params(getattr(AsyncPostgresStore, name))

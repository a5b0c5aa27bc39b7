"""Run LangGraph's store test files against one of our stores, in a pytest subprocess.

Rules:
- sync stores run the InMemoryStore file and the sync Postgres and SQLite files; async
  stores run the InMemoryStore file (its async tests) and the async Postgres and SQLite files;
- each run is its own process rooted in the laid-out suite, with our plugin loaded;
- the outcome is the plugin's JSON report plus the process's exit code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

STORES = ("postgres", "async_postgres", "redis", "async_redis")
SYNC_FILES = (
    ("memory", "test_store.py"),
    ("postgres", "test_store.py"),
    ("sqlite", "test_store.py"),
)
ASYNC_FILES = (
    ("memory", "test_store.py"),
    ("postgres", "test_async_store.py"),
    ("sqlite", "test_async_store.py"),
)
PLUGIN_DIR = Path(__file__).resolve().parent
REPO = PLUGIN_DIR.parent.parent


def files_for(store: str) -> tuple[tuple[str, str], ...]:
    """The (suite, file) pairs a store runs."""
    return ASYNC_FILES if store.startswith("async_") else SYNC_FILES


@dataclass
class Outcome:
    """What one run of one file against one store gave."""

    store: str
    suite: str
    file: str
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    deselected: dict[str, str] = field(default_factory=dict)
    exit_code: int = 0
    output: str = ""

    def row(self) -> str:
        """One table row."""
        return (
            f"| {self.store} | {self.suite}/{self.file} | {len(self.passed)} | "
            f"{len(self.failed)} | {len(self.skipped)} | {len(self.deselected)} |"
        )


def run_file(
    root: Path,
    store: str,
    suite: str,
    file: str,
    *,
    pg_url: str,
    redis_url: str,
    cluster: bool = False,
    extra: tuple[str, ...] = (),
) -> Outcome:
    """Run `suite/file` from the laid-out `root` against `store`."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(PLUGIN_DIR), str(REPO)]),
            "LANGMEM_SUITE_STORE": store,
            "LANGMEM_SUITE_PG_URL": pg_url,
            "LANGMEM_SUITE_REDIS_URL": redis_url,
            "LANGMEM_SUITE_REDIS_CLUSTER": "1" if cluster else "0",
            "LANGMEM_SUITE_REPORT": str(report),
        }
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                f"tests/{file}",
                "-p",
                "langmem_suite_plugin",
                "-p",
                "no:cacheprovider",
                "-q",
                "--tb=short",
                *extra,
            ],
            cwd=root / suite,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        outcome = Outcome(
            store, suite, file, exit_code=done.returncode, output=done.stdout + done.stderr
        )
        if report.exists():
            data = json.loads(report.read_text())
            outcome.passed, outcome.failed = data["passed"], data["failed"]
            outcome.skipped, outcome.deselected = data["skipped"], data["deselected"]
        return outcome


TABLE_HEAD = "| store | file | passed | failed | skipped | deselected |\n|---|---|---|---|---|---|"

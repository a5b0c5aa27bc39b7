"""Obtain LangGraph's store test files at run time, never from this repository.

Rules:
- `LANGGRAPH_SOURCE` names a LangGraph checkout (the directory holding `libs/`); else the
  sdists of the installed `langgraph-checkpoint` / `-postgres` versions (and a pinned
  `-sqlite`, which we do not install) are downloaded once with pip into a cache;
- each suite is laid out in its own directory with a `tests/` package of LangGraph's files
  and our `conftest.py` (LangGraph's Postgres conftest clears LangGraph's own tables).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

SQLITE_VERSION = "3.1.2"


@dataclass(frozen=True)
class Suite:
    """One LangGraph package's store tests: the files to run and the helpers they import."""

    name: str
    package: str
    lib: str
    files: tuple[str, ...]
    helpers: tuple[str, ...]


SUITES = (
    Suite(
        "memory", "langgraph-checkpoint", "checkpoint", ("test_store.py",), ("embed_test_utils.py",)
    ),
    Suite(
        "postgres",
        "langgraph-checkpoint-postgres",
        "checkpoint-postgres",
        ("test_store.py", "test_async_store.py"),
        ("embed_test_utils.py",),
    ),
    Suite(
        "sqlite",
        "langgraph-checkpoint-sqlite",
        "checkpoint-sqlite",
        ("test_store.py", "test_async_store.py"),
        (),
    ),
)

CONFTEST = '''"""Our stand-in for LangGraph's conftest: servers come from the harness."""
import os

import pytest

try:
    from tests.embed_test_utils import CharacterEmbeddings
except ImportError:  # the SQLite suite defines its own
    CharacterEmbeddings = None

DEFAULT_URI = os.environ["LANGMEM_SUITE_PG_URL"]
DEFAULT_POSTGRES_URI = DEFAULT_URI
VECTOR_TYPES = ["vector", "halfvec"]


@pytest.fixture
def fake_embeddings():
    return CharacterEmbeddings(dims=500)
'''

PYTEST_INI = """[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
timeout = 120
"""


class SourceUnavailable(RuntimeError):
    """The test files could not be obtained (no checkout given, no network)."""


def cache_dir() -> Path:
    """Where downloaded sdists and laid-out suites live."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "langmem_prod" / "langgraph_suites"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        if package == "langgraph-checkpoint-sqlite":
            return SQLITE_VERSION
        raise


def _sdist_tests(suite: Suite, downloads: Path) -> Path:
    """The `tests/` directory of the suite's sdist, downloaded and unpacked if needed."""
    version = _version(suite.package)
    stem = f"{suite.package.replace('-', '_')}-{version}"
    unpacked = downloads / stem
    if not (unpacked / "tests").is_dir():
        downloads.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-binary",
                ":all:",
                "--no-deps",
                "--dest",
                str(downloads),
                f"{suite.package}=={version}",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        archive = downloads / f"{stem}.tar.gz"
        if done.returncode != 0 or not archive.exists():
            raise SourceUnavailable(
                f"could not download the {suite.package} {version} sdist with pip "
                f"({done.stderr.strip().splitlines()[-1:]}); set LANGGRAPH_SOURCE to a "
                "LangGraph checkout instead"
            )
        with tarfile.open(archive) as tar:
            tar.extractall(downloads, filter="data")
    return unpacked / "tests"


def lay_out(work: Path | None = None) -> dict[str, Path]:
    """Each suite's directory (with `tests/` and `pytest.ini`), keyed by suite name."""
    checkout = os.environ.get("LANGGRAPH_SOURCE")
    work = work or Path(tempfile.mkdtemp(prefix="langgraph_suites_"))
    roots: dict[str, Path] = {}
    for suite in SUITES:
        if checkout:
            origin = Path(checkout) / "libs" / suite.lib / "tests"
            if not origin.is_dir():
                raise SourceUnavailable(f"LANGGRAPH_SOURCE has no libs/{suite.lib}/tests")
        else:
            origin = _sdist_tests(suite, cache_dir() / "sdists")
        root = work / suite.name
        shutil.rmtree(root, ignore_errors=True)
        (root / "tests").mkdir(parents=True)
        for name in (*suite.files, *suite.helpers):
            shutil.copy(origin / name, root / "tests" / name)
        (root / "tests" / "__init__.py").write_text("")
        (root / "tests" / "conftest.py").write_text(CONFTEST)
        (root / "pytest.ini").write_text(PYTEST_INI)
        roots[suite.name] = root
    return roots

"""The README runs as written, offline, and every link and path it names exists.

`tests/readme_runner.py` runs the README's Python blocks in order in one session, and its
`langmem-prod` commands, in a fresh process and an empty directory, on throwaway servers:
the blocks start their own (the `[embedded]` extra); `$LANGMEM_URL`, the "own server" of
"On your own servers", is one more this test starts. No OpenAI key: the runner swaps the
`"openai:..."` embedding string for `HashingEmbeddings`, and nothing else.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from langmem_prod.embedded import EmbeddedPostgres
from tests.readme_runner import blocks, cli_commands, promises

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]
# The one warning the README announces: its legacy RunnableWithMessageHistory block.
ANNOUNCED = "LangChainDeprecationWarning: RunnableWithMessageHistory is deprecated"


@pytest.fixture(scope="module")
def own_server() -> Iterator[str]:
    """The reader's "own" PostgreSQL of "On your own servers" (with pgvector)."""
    with EmbeddedPostgres() as server:
        yield server.url


@pytest.fixture(scope="module")
def reports(own_server: str, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    workdir = tmp_path_factory.mktemp("readme")
    environment = {
        k: v
        for k, v in os.environ.items()
        if k not in ("OPENAI_API_KEY", "LANGMEM_MASTER_KEYS", "LANGMEM_PRIMARY_KEY_ID")
    }
    environment.update(PYTHONPATH=str(ROOT), LANGMEM_URL=own_server)
    done = subprocess.run(
        [sys.executable, "-m", "tests.readme_runner", str(README), "report.json"],
        cwd=workdir,
        env=environment,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return list(json.loads((workdir / "report.json").read_text()))


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_every_python_block_and_cli_command_runs(reports: list[dict[str, Any]]) -> None:
    failed = [r for r in reports if r["error"]]
    assert not failed, f"README.md line {failed[0]['line']}:\n{failed[0]['error']}"
    python = [b for b in blocks(README.read_text()) if b.lang == "python"]
    bash = [b for b in blocks(README.read_text()) if b.lang == "bash"]
    ran = [r["line"] for r in reports if r["lang"] == "python"]
    assert ran == [b.line for b in python]  # all of them, in order
    commands = [["langmem-prod", *args] for b in bash for args in cli_commands(b.code)]
    assert [r["command"] for r in reports if r["lang"] == "bash"] == commands
    assert {"demo", "setup", "new-master-key"} <= {c[1] for c in commands}


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_every_block_prints_what_it_promises(reports: list[dict[str, Any]]) -> None:
    promised = [r for r in reports if r["expected"]]
    assert sum(len(r["expected"]) for r in promised) >= 15  # the README shows its results
    for report in promised:
        position = 0
        for text in report["expected"]:
            found = report["stdout"].find(text, position)
            assert found >= 0, f"README.md line {report['line']}: {text!r} not printed in order"
            position = found + len(text)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_no_warning_but_the_announced_deprecation(reports: list[dict[str, Any]]) -> None:
    warned = {(r["line"], w) for r in reports for w in r["warnings"]}
    legacy = [b.line for b in blocks(README.read_text()) if "RunnableWithMessageHistory(" in b.code]
    assert len(legacy) == 1
    assert {w for line, w in warned if line != legacy[0]} == set()
    assert {w.split(".")[0] for line, w in warned if line == legacy[0]} == {ANNOUNCED}


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_cli_commands_say_what_they_did(reports: list[dict[str, Any]]) -> None:
    by_command = {r["command"][1]: r for r in reports if r["lang"] == "bash"}
    assert "created schema 'langmem'" in by_command["setup"]["stdout"]
    assert re.fullmatch(r"2026-12:[A-Za-z0-9+/]{43}=\n", by_command["new-master-key"]["stdout"])
    assert "You told me" in by_command["demo"]["stdout"]


def test_the_runner_reads_promises_and_commands() -> None:
    assert promises("x = 1\nprint(x)  # -> 1\nprint(2)\ny = 3  # -> not a print\n") == ["1"]
    code = "pip install x && .venv/bin/langmem-prod demo  # note\nlangmem-prod setup --history\n"
    assert cli_commands(code) == [["demo"], ["setup", "--history"]]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {
        slug(line.lstrip("#"))
        for line in path.read_text().splitlines()
        if re.match(r"#{1,6} ", line) and not line.startswith("#!")
    }


def prose(path: Path) -> str:
    """The text of a markdown file outside its fenced code blocks."""
    return re.sub(r"^```.*?^```", "", path.read_text(), flags=re.MULTILINE | re.DOTALL)


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(ROOT)) for d in DOCS])
def test_every_link_resolves(doc: Path) -> None:
    links = re.findall(r"\]\(([^)\s]+)\)", prose(doc))
    assert links or doc != README
    for link in links:
        if re.match(r"[a-z]+://", link):
            continue  # the web is not checked offline
        target, _, anchor = link.partition("#")
        path = (doc.parent / target).resolve() if target else doc
        assert path.exists(), f"{doc.name} links to {link}, which does not exist"
        if anchor and path.suffix == ".md":
            assert anchor in anchors(path), f"{doc.name} links to a missing heading: {link}"


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(ROOT)) for d in DOCS])
def test_every_path_named_exists(doc: Path) -> None:
    named = set(re.findall(r"`((?:[\w.-]+/)+[\w.*-]+\.(?:py|ipynb|md|jsonl|toml))`", prose(doc)))
    assert named or doc != README
    for path in named:  # from the repository's root, or a package's folder
        found = [*ROOT.glob(path), *ROOT.glob(f"langmem_prod/**/{path}")]
        assert found, f"{doc.name} names {path}, which does not exist"

"""Run README.md's code blocks in order, as a newcomer would; `tests/test_readme.py` drives it.

Run as `python -m tests.readme_runner README.md REPORT.json` in an empty directory; it
writes one JSON list with a report per Python block and per `langmem-prod` command.

Rules:
- Python blocks run in order in one namespace, as in a notebook session, in the current
  directory, with line numbers of README.md in tracebacks; each block's stdout is
  captured; `print(...)  # -> TEXT` on a line promises TEXT in that block's output;
- one substitution, where an OpenAI key would be needed: with no `OPENAI_API_KEY`, the
  string "openai:text-embedding-3-small" becomes `HashingEmbeddings(1536)` (that model's
  dimensions); nothing else is injected;
- in bash blocks, every command (split on `&&`) whose program is `langmem-prod` (or
  `.venv/bin/langmem-prod`) runs as `python -m langmem_prod.cli` with the runner's
  environment; other commands (pip, pytest, export, benchmarks) are not run;
- every warning is recorded and reported, never filtered;
- a failing block stops the run; at the end, whatever the blocks left open is closed:
  stores and pools, the histories' shared connections, then the embedded servers.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import re
import shlex
import subprocess
import sys
import traceback
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
PROMISE = re.compile(r"#\s*->\s*(.+?)\s*$")
OPENAI_EMBED = '"openai:text-embedding-3-small"'
OPENAI_DIMS = 1536
CLI_PROGRAMS = ("langmem-prod", ".venv/bin/langmem-prod")


@dataclass(frozen=True)
class Block:
    """A fenced code block of the README: its language, first code line and text."""

    lang: str
    line: int
    code: str


@dataclass
class Report:
    """What running one Python block or one CLI command gave."""

    lang: str
    line: int
    command: list[str] | None = None
    stdout: str = ""
    stderr: str = ""
    expected: list[str] = field(default_factory=list)
    error: str | None = None
    warnings: list[str] = field(default_factory=list)


def blocks(markdown: str) -> list[Block]:
    """The fenced code blocks of `markdown`, in order, with their first line's number."""
    return [
        Block(m.group(1), markdown.count("\n", 0, m.start(2)) + 1, m.group(2))
        for m in FENCE.finditer(markdown)
    ]


def promises(code: str) -> list[str]:
    """What a block's `print(...)  # -> TEXT` lines promise to print, in order."""
    found = []
    for line in code.splitlines():
        if "print(" in line and (match := PROMISE.search(line)):
            found.append(match.group(1))
    return found


def cli_commands(code: str) -> list[list[str]]:
    """The `langmem-prod` commands of a bash block, as argument lists."""
    commands = []
    for line in code.splitlines():
        for part in line.split("&&"):
            words = shlex.split(part, comments=True)
            if words and words[0] in CLI_PROGRAMS:
                commands.append(words[1:])
    return commands


def offline(code: str, namespace: dict[str, Any]) -> str:
    """`code` with OpenAI embeddings swapped for offline ones when there is no API key."""
    if os.environ.get("OPENAI_API_KEY") or OPENAI_EMBED not in code:
        return code
    from langmem_prod import HashingEmbeddings  # noqa: PLC0415 - only when substituting

    namespace["_readme_offline_embeddings"] = HashingEmbeddings(OPENAI_DIMS)
    return code.replace(OPENAI_EMBED, "_readme_offline_embeddings")


def run_python(block: Block, namespace: dict[str, Any]) -> Report:
    """Execute one block in `namespace`; tracebacks name README.md's lines."""
    report = Report("python", block.line, expected=promises(block.code))
    tree = ast.parse(offline(block.code, namespace), filename="README.md")
    ast.increment_lineno(tree, block.line - 1)
    out = io.StringIO()
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(out):
        warnings.simplefilter("always")
        try:
            exec(compile(tree, "README.md", "exec"), namespace)
        except BaseException:
            report.error = traceback.format_exc()
    report.stdout = out.getvalue()
    report.warnings = [f"{w.category.__name__}: {w.message}" for w in caught]
    return report


def run_cli(block: Block, args: list[str]) -> Report:
    """Run one `langmem-prod` command of a bash block."""
    command = [sys.executable, "-m", "langmem_prod.cli", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    report = Report("bash", block.line, ["langmem-prod", *args], done.stdout, done.stderr)
    if done.returncode != 0:
        report.error = f"exit status {done.returncode}: {done.stderr.strip()}"
    return report


def close_leftovers(namespace: dict[str, Any]) -> None:
    """Close what the blocks left open: stores and pools, shared connections, servers."""
    from langgraph.store.base import BaseStore  # noqa: PLC0415
    from psycopg_pool import ConnectionPool  # noqa: PLC0415

    from langmem_prod.embedded import EmbeddedPostgres, EmbeddedRedis  # noqa: PLC0415
    from langmem_prod.history import close_shared_connections  # noqa: PLC0415

    values = list(namespace.values())
    for value in values:
        if isinstance(value, BaseStore | ConnectionPool):
            with contextlib.suppress(Exception):
                value.close()  # type: ignore[union-attr]
    close_shared_connections()
    for value in values:
        if isinstance(value, EmbeddedPostgres | EmbeddedRedis):
            value.stop()


def run(markdown: str) -> list[Report]:
    """Run every Python block and every `langmem-prod` command, in order, until one fails."""
    namespace: dict[str, Any] = {"__name__": "__main__"}
    reports: list[Report] = []
    try:
        for block in blocks(markdown):
            if block.lang == "python":
                reports.append(run_python(block, namespace))
            elif block.lang == "bash":
                reports.extend(run_cli(block, args) for args in cli_commands(block.code))
            if reports and reports[-1].error:
                break
    finally:
        close_leftovers(namespace)
    return reports


if __name__ == "__main__":
    results = run(Path(sys.argv[1]).read_text())
    Path(sys.argv[2]).write_text(json.dumps([asdict(r) for r in results]))

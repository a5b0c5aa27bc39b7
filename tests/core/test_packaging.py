"""Packaging: what the `[openai]` extra brings, and what works without it."""

from __future__ import annotations

import logging
import sys
import tomllib
from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage
from langchain_core.messages.utils import count_tokens_approximately
from langgraph.store.base import embed

from langmem_prod import demo, tokens
from langmem_prod.embeddings import HashingEmbeddings
from langmem_prod.errors import ConfigurationError
from langmem_prod.store._index import index_settings

PYPROJECT = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())


def names(requirements: list[str]) -> set[str]:
    return {r.split(">")[0].split("[")[0].split("=")[0].strip() for r in requirements}


def test_openai_is_an_extra_with_what_provider_strings_need() -> None:
    project = PYPROJECT["project"]
    extras = project["optional-dependencies"]
    # init_embeddings("openai:...") lives in `langchain`, OpenAIEmbeddings in langchain-openai
    assert {"langchain", "langchain-openai"} <= names(extras["openai"])
    assert not {"langchain", "langchain-openai", "openai"} & names(project["dependencies"])
    assert "langmem_prod[openai]" in extras["dev"]  # the tests and CI cover it


def test_license_metadata_is_pep_639() -> None:
    project = PYPROJECT["project"]
    assert project["license"] == "MIT"  # an SPDX string: no setuptools deprecation warning
    for path in project["license-files"]:
        assert (Path(__file__).parents[2] / path).read_text().startswith("MIT License")
    assert PYPROJECT["build-system"]["requires"] == ["setuptools>=77"]


def test_openai_strings_resolve_with_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("langchain", reason="the [openai] extra is not installed here")
    from langchain_openai import OpenAIEmbeddings  # noqa: PLC0415 - comes with the extra

    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-used")  # nothing is embedded here
    settings = index_settings({"dims": 1536, "embed": "openai:text-embedding-3-small"})
    assert settings is not None
    assert isinstance(settings.embeddings, OpenAIEmbeddings)


def test_openai_strings_without_the_extra_say_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "langchain", None)  # as if it were not installed
    monkeypatch.setitem(sys.modules, "langchain.embeddings", None)
    embed._get_init_embeddings.cache_clear()  # LangGraph caches the import
    try:
        with pytest.raises(ConfigurationError, match=r"pip install 'langmem_prod\[openai\]'"):
            index_settings({"dims": 1536, "embed": "openai:text-embedding-3-small"})
    finally:
        embed._get_init_embeddings.cache_clear()


def test_token_counting_without_tiktoken_estimates_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "tiktoken", None)
    tokens._tiktoken_counter.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="langmem_prod.tokens"):
            counter = tokens.token_counter("gpt-4o")
        assert counter is count_tokens_approximately
        assert "langmem_prod[openai]" in caplog.text
        assert counter([HumanMessage("hello there")]) > 0
    finally:
        tokens._tiktoken_counter.cache_clear()


def test_demo_with_a_key_but_without_the_extra_stays_offline_and_says_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-used")
    monkeypatch.setitem(sys.modules, "langchain_openai", None)
    embeddings, dims, description = demo.default_embeddings()
    assert isinstance(embeddings, HashingEmbeddings)
    assert dims == 256
    assert "langmem_prod[openai]" in description

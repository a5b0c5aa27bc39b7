"""Counting the tokens of messages: the model's own counter, tiktoken, or an estimate.

Rules:
- a counter takes a list of messages and returns their token count;
- a callable is used as given; a chat model counts with its own
  `get_num_tokens_from_messages` when it has one of its own (ChatOpenAI, Anthropic...);
- an OpenAI model name ("gpt-4o", "openai:gpt-4.1") counts with tiktoken, the way
  OpenAI's chat format does (3 tokens per message and 3 to prime the reply); when
  tiktoken is not installed (it comes with the `[openai]` extra) or cannot load the
  encoding (it downloads it once; offline machines need TIKTOKEN_CACHE_DIR), the
  estimate is used, with a warning;
- anything else, and None, is `count_tokens_approximately` (about 4 characters a token).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from langchain_core.language_models import BaseLanguageModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.messages.utils import count_tokens_approximately

from langmem_prod.errors import ConfigurationError

logger = logging.getLogger("langmem_prod.tokens")

TokenCounter = Callable[[Sequence[BaseMessage]], int]
_PER_MESSAGE = 3
_REPLY_PRIMING = 3


def token_counter(spec: TokenCounter | BaseLanguageModel[Any] | str | None = None) -> TokenCounter:
    """The token counter for `spec`: a callable, a chat model, an OpenAI model name or None.

    >>> from langchain_core.messages import HumanMessage
    >>> token_counter()([HumanMessage("hello there, how are you?")])
    11
    """
    if spec is None:
        return count_tokens_approximately
    if isinstance(spec, BaseLanguageModel):
        own = type(spec).get_num_tokens_from_messages
        if own is not BaseLanguageModel.get_num_tokens_from_messages:
            return lambda messages: spec.get_num_tokens_from_messages(list(messages))
        name = getattr(spec, "model_name", None) or getattr(spec, "model", None)
        return _tiktoken_counter(name) if _is_openai(name) else count_tokens_approximately
    if isinstance(spec, str):
        if not _is_openai(spec):
            raise ConfigurationError(
                f"no tokenizer is known for model {spec!r}; pass the chat model itself, a "
                "callable counting a list of messages, or None for an estimate"
            )
        return _tiktoken_counter(spec)
    if callable(spec):
        return spec
    raise ConfigurationError(f"token_counter cannot be a {type(spec).__name__}")


def _is_openai(name: object) -> bool:
    if not isinstance(name, str):
        return False
    bare = name.removeprefix("openai:")
    return bare.startswith(("gpt-", "o1", "o3", "o4", "chatgpt-", "text-embedding-"))


@functools.lru_cache(maxsize=16)
def _tiktoken_counter(name: str) -> TokenCounter:
    try:
        import tiktoken  # noqa: PLC0415 - optional until an OpenAI model is named
    except ImportError:
        logger.warning(
            "tiktoken is not installed; counting the tokens of %s approximately. Install "
            "langmem_prod[openai] for OpenAI's tokenizer",
            name,
        )
        return count_tokens_approximately
    bare = name.removeprefix("openai:")
    try:
        try:
            encoding = tiktoken.encoding_for_model(bare)
        except KeyError:
            encoding = tiktoken.get_encoding("o200k_base")
    except Exception as exc:  # tiktoken downloads its encodings on first use
        logger.warning(
            "tiktoken could not load the encoding of %s (%s: %s); counting tokens "
            "approximately. Set TIKTOKEN_CACHE_DIR to a directory holding the encoding "
            "for offline use",
            name,
            type(exc).__name__,
            exc,
        )
        return count_tokens_approximately

    def count(messages: Sequence[BaseMessage]) -> int:
        total = _REPLY_PRIMING
        for message in messages:
            total += _PER_MESSAGE + len(encoding.encode(message.type))
            total += len(encoding.encode(message.text, disallowed_special=()))
            if message.name:
                total += 1 + len(encoding.encode(message.name))
            if isinstance(message, AIMessage) and message.tool_calls:
                total += len(encoding.encode(orjson.dumps(message.tool_calls).decode()))
        return total

    return count

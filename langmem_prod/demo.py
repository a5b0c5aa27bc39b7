"""The demo of the main job: a LangGraph agent that remembers across conversations.

Rules:
- the graph stores what the user tells it in `PostgresStore` (or `RedisStore`), under
  ("memories", user), and answers a question by semantic search over those memories;
- it runs with no API key: embeddings are `HashingEmbeddings` (lexical, deterministic),
  or OpenAI's when `OPENAI_API_KEY` is set; the answer is composed from the memories
  found, so no chat model is needed;
- the library never prints: `run_demo` returns the transcript and the CLI prints it.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

from langchain_core.embeddings import Embeddings
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.base import BaseStore, IndexConfig

from langmem_prod.embeddings import HashingEmbeddings
from langmem_prod.errors import ConfigurationError
from langmem_prod.store import PostgresStore, RedisStore

Backend = Literal["postgres", "redis"]
BACKENDS: tuple[Backend, ...] = ("postgres", "redis")

QUESTION_WORDS = ("what", "which", "who", "where", "when", "how", "do ", "does ", "is ", "?")

CONVERSATIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "monday",
        (
            "I am allergic to peanuts.",
            "My favourite programming language is Rust.",
            "I live in Lisbon and I cycle to work.",
        ),
    ),
    (
        "friday",
        (
            "What food allergy do I have?",
            "Which programming language do I like?",
            "Where do I live?",
        ),
    ),
)


def default_embeddings() -> tuple[Embeddings, int, str]:
    """OpenAI embeddings when `OPENAI_API_KEY` is set and the `[openai]` extra installed.

    Else the offline hashing ones, and the description says what OpenAI's would need.
    """
    offline = "offline HashingEmbeddings (set OPENAI_API_KEY for OpenAI)"
    if os.environ.get("OPENAI_API_KEY"):
        try:
            from langchain_openai import OpenAIEmbeddings  # noqa: PLC0415 - only with a key
        except ImportError:
            offline = (
                "offline HashingEmbeddings (OPENAI_API_KEY is set, but OpenAI's embeddings "
                "need `pip install 'langmem_prod[openai]'`)"
            )
        else:
            return (
                OpenAIEmbeddings(model="text-embedding-3-small"),
                1536,
                "OpenAI text-embedding-3-small",
            )
    return HashingEmbeddings(dims=256), 256, offline


def _text(message: AnyMessage) -> str:
    return message.content if isinstance(message.content, str) else str(message.content)


def _is_question(text: str) -> bool:
    lowered = text.lower()
    return lowered.endswith("?") or lowered.startswith(QUESTION_WORDS)


def remember_or_recall(
    state: MessagesState, config: RunnableConfig, *, store: BaseStore
) -> dict[str, list[AnyMessage]]:
    """Store a statement as a memory, or answer a question from the memories."""
    user = config["configurable"]["user_id"]
    namespace = ("memories", user)
    text = _text(state["messages"][-1])
    if not _is_question(text):
        store.put(namespace, str(uuid.uuid4()), {"text": text})
        return {"messages": [AIMessage("Noted, I will remember that.")]}
    found = store.search(namespace, query=text, limit=1)
    if not found or not found[0].score:
        return {"messages": [AIMessage("I do not remember anything about that.")]}
    best = found[0]
    return {
        "messages": [
            AIMessage(f'You told me: "{best.value["text"]}" (similarity {best.score:.2f})')
        ]
    }


def build_graph(store: BaseStore) -> CompiledStateGraph[Any, Any, Any, Any]:
    """A one-node graph whose node reads and writes long-term memory in `store`."""
    builder = StateGraph(MessagesState)
    builder.add_node("memory", remember_or_recall)
    builder.add_edge(START, "memory")
    builder.add_edge("memory", END)
    return builder.compile(store=store)


@contextmanager
def _store(backend: Backend, url: str | None, index: IndexConfig) -> Iterator[BaseStore]:
    """A set-up store of `backend` at `url`, or on a throwaway embedded server."""
    from langmem_prod import embedded  # noqa: PLC0415 - the [embedded] extra, only if used

    if backend == "redis":
        with (
            contextlib.nullcontext(url) if url else embedded.embedded_redis() as redis_url,
            RedisStore.from_url(redis_url, prefix="langmem_demo", index=index) as redis_store,
        ):
            redis_store.setup()
            yield redis_store
        return
    with (
        contextlib.nullcontext(url) if url else embedded.embedded_postgres() as conn_string,
        PostgresStore.from_conn_string(conn_string, schema="langmem_demo", index=index) as store,
    ):
        store.setup()
        yield store


def run_demo(url: str | None = None, backend: Backend = "postgres") -> list[str]:
    """Run two conversations (new threads) against one store; return the transcript.

    `backend` is "postgres" or "redis"; without `url` the demo starts a throwaway
    server (PostgreSQL 18 with pgvector, or Valkey 9).

    >>> lines = run_demo()  # starts a throwaway PostgreSQL
    >>> answer = lines[lines.index("user: Which programming language do I like?") + 1]
    >>> print(answer.split(" (similarity")[0])
    assistant: You told me: "My favourite programming language is Rust."
    >>> run_demo(backend="redis")[-1].split(" under")[0]  # a throwaway Valkey
    '--- 3 memories in Redis'
    """
    if backend not in BACKENDS:
        raise ConfigurationError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    embeddings, dims, label = default_embeddings()
    lines = [f"embeddings: {label}"]
    index: IndexConfig = {"dims": dims, "embed": embeddings, "fields": ["text"]}
    with _store(backend, url, index) as store:
        graph = build_graph(store)
        user = f"user-{uuid.uuid4().hex[:6]}"
        for thread, messages in CONVERSATIONS:
            lines.append(f"--- conversation {thread!r} (a new thread: only the store remembers)")
            config: RunnableConfig = {"configurable": {"user_id": user, "thread_id": thread}}
            for message in messages:
                result = graph.invoke({"messages": [HumanMessage(message)]}, config)
                lines += [f"user: {message}", f"assistant: {_text(result['messages'][-1])}"]
        stored = store.search(("memories", user), limit=100)
        for item in stored:
            store.delete(item.namespace, item.key)
    where = "Redis" if backend == "redis" else "PostgreSQL"
    lines.append(f"--- {len(stored)} memories in {where} under ('memories', {user!r}), deleted")
    return lines

"""Semantic index settings and the texts an item contributes to it.

Rules:
- `IndexConfig(dims, embed, fields)` is LangGraph's (`text_fields`, SqliteStore's name,
  is accepted for `fields`); `fields` defaults to ["$"], the whole value as one JSON
  text; a put's `index=[...]` replaces the fields for that item and `index=False` leaves
  the item without vectors;
- each field path yields zero or more texts ("a[*].b" yields one per element); a field
  with several texts is stored as "path.0", "path.1", ... and a field with one as "path",
  as LangGraph's stores name them;
- an item is ranked by its best-matching vector (max pooling);
- `distance_type` is LangGraph's: "cosine" (default; score = cosine similarity), "l2"
  (score = minus the Euclidean distance) or "inner_product" (score = the dot product);
  every backend scores as LangGraph's PostgresStore does, higher is better;
- a put's field paths are strings without NUL or lone surrogates (they are stored).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from langchain_core.embeddings import Embeddings
from langgraph.store.base import IndexConfig, ensure_embeddings, get_text_at_path, tokenize_path

from langmem_prod.errors import ConfigurationError, EmbeddingError, InvalidInputError
from langmem_prod.store._effects import Embed
from langmem_prod.store._text import has_surrogate

V = TypeVar("V")
_TOP = re.compile(r"[.\[]")

Tokens = Literal["$"] | list[str]
Distance = Literal["cosine", "l2", "inner_product"]
DISTANCES: tuple[Distance, ...] = ("cosine", "l2", "inner_product")


@dataclass(frozen=True, slots=True)
class IndexSettings:
    """Checked semantic-index settings shared by every backend."""

    dims: int
    embeddings: Embeddings
    fields: tuple[tuple[str, Tokens], ...]
    options: Mapping[str, Any]
    distance: Distance = "cosine"

    @property
    def vectors_per_item(self) -> int:
        """A rough count of vectors per item, to size candidate lists."""
        return max(1, len(self.fields))


def index_settings(config: IndexConfig | Mapping[str, Any] | None) -> IndexSettings | None:
    """Check an `IndexConfig`; backends read their own extra keys from `options`.

    >>> s = index_settings({"dims": 3, "embed": lambda texts: [[1.0, 0, 0] for _ in texts]})
    >>> s.dims, s.fields, s.distance
    (3, (('$', '$'),), 'cosine')

    Raises:
        ConfigurationError: dims is not a positive int, embed is missing, fields malformed,
            distance_type is not one of "cosine", "l2", "inner_product".
    """
    if config is None:
        return None
    dims = config.get("dims")
    if isinstance(dims, bool) or not isinstance(dims, int) or dims < 1:
        raise ConfigurationError("IndexConfig dims must be a positive int, e.g. 1536")
    if config.get("embed") is None:
        raise ConfigurationError(
            "IndexConfig needs 'embed': an Embeddings object, a function of texts, "
            "or a provider string such as 'openai:text-embedding-3-small'"
        )
    try:
        embeddings = ensure_embeddings(config["embed"])
    except ValueError as exc:
        openai = str(config["embed"]).startswith("openai:")
        extra = " For 'openai:...' strings: pip install 'langmem_prod[openai]'." if openai else ""
        raise ConfigurationError(f"IndexConfig embed cannot be used: {exc}{extra}") from None
    fields = _fields(config)
    if isinstance(fields, str):
        fields = [fields]
    if not isinstance(fields, list | tuple) or not all(isinstance(f, str) for f in fields):
        raise ConfigurationError("IndexConfig fields must be a list of paths, e.g. ['text']")
    options = {
        k: v for k, v in config.items() if k not in ("dims", "embed", "fields", "text_fields")
    }
    distance = options.pop("distance_type", "cosine")
    if distance not in DISTANCES:
        raise ConfigurationError(
            "IndexConfig distance_type must be 'cosine' (the default), 'l2' or 'inner_product'"
        )
    tokens = tuple(_tokenize(f) for f in fields)
    return IndexSettings(dims, embeddings, tokens, options, distance)


def _fields(config: IndexConfig | Mapping[str, Any]) -> Any:
    """`fields`, or LangGraph's SQLite spelling `text_fields` (never two different lists)."""
    fields, text_fields = config.get("fields"), config.get("text_fields")
    if fields and text_fields and fields != text_fields:
        raise ConfigurationError(
            "IndexConfig has both 'fields' and 'text_fields' (SqliteStore's name for "
            "'fields') and they differ; pass only 'fields'"
        )
    return fields or text_fields or ["$"]


def _tokenize(path: str) -> tuple[str, Tokens]:
    return (path, "$") if path == "$" else (path, tokenize_path(path))


def item_texts(
    settings: IndexSettings, value: Mapping[str, Any], index: Literal[False] | Sequence[str] | None
) -> list[tuple[str, str]]:
    """Return the (field name, text) pairs to embed for one put.

    >>> s = index_settings({"dims": 1, "embed": lambda t: [[1.0] for _ in t], "fields": ["a[*]"]})
    >>> item_texts(s, {"a": ["x", "y"]}, None)
    [('a[*].0', 'x'), ('a[*].1', 'y')]
    """
    check_index(index)
    if index is False:
        return []
    fields = settings.fields if index is None else tuple(_tokenize(f) for f in index)
    pairs: list[tuple[str, str]] = []
    for path, tokens in fields:
        texts = get_text_at_path(value, tokens)
        if len(texts) == 1:
            pairs.append((path, texts[0]))
        else:
            pairs.extend((f"{path}.{i}", text) for i, text in enumerate(texts))
    return pairs


def top_fields(pairs: Iterable[tuple[str, str]]) -> frozenset[str]:
    """The top-level fields of a value that (field, text) pairs embed ("$": all of it).

    >>> sorted(top_fields([("a[*].0", "x"), ("b.c", "y"), ("d", "z"), ("$", "{}")]))
    ['$', 'a', 'b', 'd']
    """
    return frozenset(_TOP.split(path, 1)[0] for path, _ in pairs)


def check_index(index: object) -> None:
    """Refuse a put's `index` unless False, None or a list of storable field paths.

    Checked whether or not the store has an index, like every other input.

    >>> check_index(["text", "tags[*]"])
    """
    if index is None or index is False:
        return
    if not isinstance(index, list | tuple) or not all(_is_field(f) for f in index):
        raise InvalidInputError(
            "index must be False, None, or a list of field paths (strings without NUL "
            "characters or lone surrogates)"
        )


def _is_field(path: object) -> bool:
    """A field path a put may name: its vectors are stored under it."""
    return isinstance(path, str) and "\x00" not in path and not has_surrogate(path)


def embed_texts(
    index: IndexSettings | None,
    texts: list[str],
    *,
    query: bool,
    encode: Callable[[Sequence[float]], V],
) -> Generator[Embed, Any, dict[str, V]]:
    """Embed `texts` (an `Embed` effect) and map each to its vector as `encode` writes it."""
    if not texts or index is None:
        return {}
    vectors = yield Embed(tuple(texts), query=query)
    check_vectors(vectors, len(texts), index.dims)
    return {t: encode(v) for t, v in zip(texts, vectors, strict=True)}


def check_vectors(vectors: Sequence[Sequence[float]], count: int, dims: int) -> None:
    """Refuse an embedding answer of the wrong length or width.

    Raises:
        EmbeddingError: the model returned a different number of vectors, or vectors
            whose width is not the configured `dims`.
    """
    if len(vectors) != count:
        raise EmbeddingError(
            f"the embedding model returned {len(vectors)} vectors for {count} texts"
        )
    for vector in vectors:
        if len(vector) != dims:
            raise EmbeddingError(
                f"the embedding model returned {len(vector)}-dimensional vectors but the "
                f"index is configured with dims={dims}; set IndexConfig dims to match"
            )

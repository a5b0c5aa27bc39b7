"""The Redis store's distance types: how vectors are stored and scored for each.

Rules:
- scores are LangGraph's PostgresStore's: cosine similarity, minus the Euclidean
  distance (l2), the dot product (inner_product); higher is better;
- cosine vectors are stored unit-length (float32), so the search script's dot product
  is the cosine; l2 and inner_product vectors as the model returned them;
- vectors written for one type give wrong scores under another, so the first `setup()`
  records the type under the key prefix and later ones refuse a different type.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Generator, Sequence
from typing import Any

from langmem_prod.errors import ConfigurationError
from langmem_prod.store._index import IndexSettings
from langmem_prod.store.redis._effects import Pipeline
from langmem_prod.store.redis._keys import KeyLayout


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _unit_blob(vector: Sequence[float]) -> bytes:
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return struct.pack(f"<{len(vector)}f", *(x / norm for x in vector))


def _raw_blob(vector: Sequence[float]) -> bytes:
    return struct.pack(f"<{len(vector)}f", *vector)


def blob_encoder(index: IndexSettings) -> Callable[[Sequence[float]], bytes]:
    """How vectors are written for the index's distance type (unit-length for cosine)."""
    return _unit_blob if index.distance == "cosine" else _raw_blob


def check_distance_gen(
    keys: KeyLayout, index: IndexSettings | None
) -> Generator[Pipeline, Any, None]:
    """Record the index's distance type, or refuse one other than the recorded type.

    Cosine vectors are stored unit-length and the others as the model returned them,
    so vectors written for one type give wrong scores under another.
    """
    if index is None:
        return
    wanted = index.distance
    (found,) = yield Pipeline((("GET", keys.distance),))
    if found is None:  # the first setup; a read-only replica sees its primary's record
        _, found = yield Pipeline((("SET", keys.distance, wanted, "NX"), ("GET", keys.distance)))
    if _text(found) != wanted:
        raise ConfigurationError(
            f"the vectors under key prefix {keys.prefix!r} were written for "
            f"distance_type {_text(found)!r}, but this store is configured for {wanted!r}; "
            "use the same distance_type as before, or another key prefix (vectors written "
            "for one type cannot be scored for another without re-embedding)"
        )

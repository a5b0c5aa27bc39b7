"""A deterministic local embedding for demos, tests and notebooks: no model, no network.

Rules:
- a text becomes a bag of lower-cased words (common English stop words dropped) and
  their character trigrams, hashed (BLAKE2b, stable across processes) into `dims`
  signed buckets, then L2-normalised; trigrams let "allergy" meet "allergic";
- texts that share words score high under cosine similarity, unrelated texts near 0;
  it captures lexical overlap, not meaning: use a real model in production.
"""

from __future__ import annotations

import hashlib
import math
import re

from langchain_core.embeddings import Embeddings

_WORD = re.compile(r"[\w']+")
_STOP_WORDS_TEXT = (
    "a an and are as at be but by do does did for from has have i i'm in is it its me my "
    "of on or our so that the their them they this to was we what when where which who "
    "will with you your"
)
_STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())


class HashingEmbeddings(Embeddings):
    """Feature-hashing embeddings: deterministic, offline, fast.

    Example:
        >>> emb = HashingEmbeddings(dims=64)
        >>> a, b, c = emb.embed_documents(["I love pizza", "pizza is what I love", "tax form"])
        >>> cos = lambda x, y: sum(p * q for p, q in zip(x, y))
        >>> cos(a, b) > 0.5 > cos(a, c)
        True
    """

    def __init__(self, dims: int = 256) -> None:
        if dims < 1:
            raise ValueError("dims must be positive")
        self.dims = dims

    def _features(self, text: str) -> list[str]:
        words = [w for w in _WORD.findall(text.lower()) if w not in _STOP_WORDS]
        grams = [f"#{w}#"[i : i + 3] for w in words for i in range(len(w))]
        return words + words + grams

    def _embed(self, text: str) -> list[float]:
        vector = [0.0] * self.dims
        for feature in self._features(text):
            digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
            bucket = int.from_bytes(digest[:4], "little") % self.dims
            vector[bucket] += 1.0 if digest[4] & 1 else -1.0
        norm = math.sqrt(sum(x * x for x in vector)) or 1.0
        return [x / norm for x in vector]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed each text."""
        return [self._embed(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        """Embed a search query the same way as documents."""
        return self._embed(text)

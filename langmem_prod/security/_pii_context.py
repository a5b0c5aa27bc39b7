"""What the text around a candidate says about it: context words and glued tokens.

Rules:
- the context of a candidate is the nearest known word among the 40 characters before
  it (words are runs of letters, compared in lower case): a phone word ("call", "Tel.",
  "Handy", "téléphone"...), an SSN word, a mail word, a reference word ("order",
  "invoice", "ISBN", "tracking"...) or a version word ("version", "build", "v"...);
  "number", "no", "id"... right after a known word extend it ("tracking number"), and
  "number" on its own is a phone word ("my number is ...");
- a reference or version word vetoes a candidate only when it is close (16 characters
  or less between them): "order 48213 paid with 4111 1111 1111 1111" is still a card;
- a token is glued to its neighbour when they touch (`a456`, `0199-B`, `v1.2.3.4`,
  `1.2.3.4.5`): such a number is a part of a larger identifier, never PII on its own.
"""

from __future__ import annotations

import re

from langmem_prod.security._pii_tables import (
    CARD_WORDS,
    CONTACT_WORDS,
    IDENTIFIER_WORDS,
    MAIL_WORDS,
    PHONE_WORDS,
    REFERENCE_WORDS,
    SSN_WORDS,
    VERSION_WORDS,
)

CONTEXT_CHARS = 40
VETO_CHARS = 16
NOT_PII = frozenset({"ref", "version"})

_WORD = re.compile(r"[^\W\d_]+")
_GLUE = "-./,+\u2010\u2011\u2013"


def _word_kinds() -> dict[str, frozenset[str]]:
    kinds: dict[str, set[str]] = {}
    for kind, words in (
        ("phone", PHONE_WORDS | CONTACT_WORDS),
        ("mail", MAIL_WORDS | CONTACT_WORDS),
        ("ssn", SSN_WORDS),
        ("ref", REFERENCE_WORDS),
        ("version", VERSION_WORDS),
        ("card", CARD_WORDS),
        ("identifier", IDENTIFIER_WORDS),
    ):
        for word in words:
            kinds.setdefault(word, set()).add(kind)
    return {word: frozenset(found) for word, found in kinds.items()}


_KINDS = _word_kinds()
# Words that continue the known word just before them: "tracking number", "order no.".
_PHONE_NUMBER = frozenset({"number", "numbers"})
_CONTINUATIONS = frozenset(["number", "numbers", "no", "nr", "num", "id", "code"])


def context(text: str, start: int) -> tuple[frozenset[str], int]:
    """The kinds of the known word nearest before `start`, and the characters between.

    >>> kinds, gap = context("Order no. 4155552671", 10)
    >>> sorted(kinds), gap
    (['ref'], 2)
    >>> kinds, gap = context("reach me: 4155552671", 10)
    >>> sorted(kinds), gap
    (['mail', 'phone'], 5)
    """
    found: frozenset[str] = frozenset()
    gap, last = CONTEXT_CHARS, -CONTEXT_CHARS
    for word in _WORD.finditer(text, max(0, start - CONTEXT_CHARS), start):
        lower = word.group().lower()
        kinds = _KINDS.get(lower)
        if kinds:
            found = kinds
        elif found and lower in _CONTINUATIONS and word.start() - last <= 3:
            pass  # "tracking number": still a reference
        elif lower in _PHONE_NUMBER:
            found = _KINDS["phone"]  # "my number is ...", on its own
        else:
            continue
        gap, last = start - word.end(), word.end()
    return found, gap


def has_context(text: str, start: int, kind: str) -> bool:
    """Whether the nearest known word before `start` is a word of `kind`."""
    return kind in context(text, start)[0]


def vetoed(text: str, start: int, kinds: frozenset[str] = NOT_PII) -> bool:
    """Whether a word of `kinds` (reference, version) sits just before `start`."""
    found, gap = context(text, start)
    return gap <= VETO_CHARS and not found.isdisjoint(kinds)


def glued_before(text: str, start: int) -> bool:
    """Whether the token starting at `start` touches an alphanumeric one before it."""
    if start == 0:
        return False
    ch = text[start - 1]
    return ch.isalnum() or ch == "_" or (ch in _GLUE and start > 1 and text[start - 2].isalnum())


def glued_after(text: str, end: int) -> bool:
    """Whether the token ending at `end` touches an alphanumeric one after it."""
    if end >= len(text):
        return False
    ch = text[end]
    return ch.isalnum() or ch == "_" or (ch in _GLUE and text[end + 1 : end + 2].isalnum())

"""Card and phone numbers in runs of digit groups, whatever their spacing.

Rules:
- a run (digits with spaces, dashes, dots, slashes, parentheses) is cut into tokens; a
  dotted sequence (`06.12.34.56.78`, `10.0.19045.1234`) is one unit, taken whole or not
  at all; a first or last unit glued to letters or another number is dropped;
- every window of consecutive units is tried, longest first, left to right, so a card
  followed by its expiry date, or two numbers in one list, are each found;
- CARD: 13-19 digits, the first group of 4 digits or more and none of 1 digit, dotted
  only as 4-4-4-4, Luhn, and a card network's prefix and length (or, after a card word
  such as "card" or "Visa", any prefix: airline and private-label cards);
- PHONE: `+` or `00` then a country code and a national number of that country's
  length (NANP rules for +1; a `(0)` trunk is ignored); NANP `(415) 555-2671`,
  `1-800-555-0199`, `415.555.2671`; a trunk-0 national number in groups (10-12 digits,
  a 2-5 digit area code, no 1-digit last group: not an ISBN); after a phone word, also a
  bare number or any grouping of 10-12 digits in groups of 2 or more, and a trunk-0
  number of 9 digits; never the 3-2-4 shape of an SSN;
- a reference or version word just before a number vetoes it, `+` numbers excepted.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

from langmem_prod.security._pii_checks import card_network_ok, luhn
from langmem_prod.security._pii_context import (
    NOT_PII,
    VETO_CHARS,
    context,
    glued_after,
    glued_before,
)
from langmem_prod.security._pii_tables import (
    CALLING_CODES_2,
    CALLING_PREFIXES_3,
    DEFAULT_NATIONAL_LENGTHS,
    NATIONAL_LENGTHS,
)

Span = tuple[int, int]

SP = "[ \u00a0\u202f]"  # the spaces people put inside numbers (NBSP: French typography)
DASH = "[-\u2010\u2011\u2013]"
# Runs start with a character class and look behind it (see `_pii_rules`).
CARD_RUN = re.compile(rf"\d(?<!\w\d)\d*(?:(?:{SP}?{DASH}{SP}?|{SP}|\.)\d+)*")
PHONE_RUN = re.compile(
    r"[+(\d](?<![\w+][+(\d])[\d().\-\u2010\u2011\u2013/ +\u00a0\u202f]*(?<=[\d)])"
)
_DIGITS = re.compile(r"\d+")
_PHONE_TOKEN = re.compile(r"\+?(?:\(\+?\d+\)|\d+)")
_JOINED = re.compile(rf"{SP}?(?:[./]|{DASH})?{SP}?")


@dataclass
class _Run:
    """A run's tokens, their digits, and its units (token index ranges)."""

    text: str
    spans: list[Span]
    tokens: list[str]
    digits: list[str]
    sizes: list[int]  # digits before each token (prefix sums)
    units: list[Span]
    _context: dict[int, tuple[frozenset[str], int]] = field(default_factory=dict)

    def context(self, token: int) -> tuple[frozenset[str], int]:
        """The context of a number starting at `token` (computed once per token)."""
        if token not in self._context:
            self._context[token] = context(self.text, self.spans[token][0])
        return self._context[token]

    def vetoed(self, token: int) -> bool:
        """Whether a reference or version word vetoes a number starting at `token`."""
        kinds, gap = self.context(token)
        return gap <= VETO_CHARS and not kinds.isdisjoint(NOT_PII)

    def phone_word(self, token: int) -> bool:
        """Whether a phone word is the nearest known word before `token`."""
        return "phone" in self.context(token)[0]

    def card_word(self, token: int) -> bool:
        """Whether a card word ("card", "Visa", "Karte"...) is the nearest before `token`."""
        return "card" in self.context(token)[0]

    def sep(self, token: int) -> str:
        """The separator before `token`."""
        return self.text[self.spans[token - 1][1] : self.spans[token][0]]


def _run(match: re.Match[str], token: re.Pattern[str]) -> _Run:
    text = match.string
    spans = [m.span() for m in token.finditer(text, match.start(), match.end())]
    units: list[Span] = []
    for i, (start, _) in enumerate(spans):
        if units and text[spans[i - 1][1] : start] == ".":
            units[-1] = (units[-1][0], i + 1)
        else:
            units.append((i, i + 1))
    if units and glued_before(text, spans[units[0][0]][0]):
        units = units[1:]
    if units and glued_after(text, spans[units[-1][1] - 1][1]):
        units = units[:-1]
    tokens = [text[s:e] for s, e in spans]
    digits = [t.strip("+()") for t in tokens]
    return _Run(text, spans, tokens, digits, list(accumulate(map(len, digits), initial=0)), units)


def _windows(
    run: _Run,
    units: list[Span],
    ok: Callable[[_Run, int, int], bool],
    *,
    digits: tuple[int, int],
    most_units: int,
    start: Callable[[_Run, int], bool],
) -> Iterator[Span]:
    """The longest windows of consecutive units that `ok` accepts, left to right.

    A window starts where `start` allows, has at most `most_units` units and between
    `digits` digits: the work per unit is bounded, whatever the run.
    """
    least, most = digits
    i = 0
    while i < len(units):
        if not start(run, units[i][0]):
            i += 1
            continue
        best, count = -1, 0
        for j in range(i, min(len(units), i + most_units)):
            count += run.sizes[units[j][1]] - run.sizes[units[j][0]]
            if count > most:
                break
            if count >= least and ok(run, units[i][0], units[j][1]):
                best = j
        if best < 0:
            i += 1
            continue
        yield run.spans[units[i][0]][0], run.spans[units[best][1] - 1][1]
        i = best + 1


# --- cards --------------------------------------------------------------------------


def _card_start(run: _Run, a: int) -> bool:
    return len(run.digits[a]) >= 4


def _card_ok(run: _Run, a: int, b: int) -> bool:
    sizes = [len(d) for d in run.digits[a:b]]
    if sizes[0] < 4 or min(sizes) < 2:
        return False  # the issuer prefix is written in one piece; "1 2 3 4..." is a list
    seps = {run.sep(k) for k in range(a + 1, b)}
    if "." in seps and (seps != {"."} or set(sizes) != {4}):
        return False  # dotted numbers are versions and amounts, unless 4-4-4-4
    digits = "".join(run.digits[a:b])
    if not luhn(digits) or run.vetoed(a):
        return False
    return card_network_ok(digits) or run.card_word(a)


def _digit_count(match: re.Match[str]) -> int:
    run = match.group()
    return len(run) if len(run) < 7 else sum(map(str.isdigit, run))


def cards(match: re.Match[str]) -> Iterator[Span]:
    """The card numbers in a run of digit groups."""
    if _digit_count(match) < 13:
        return iter(())
    run = _run(match, _DIGITS)
    return _windows(run, run.units, _card_ok, digits=(13, 19), most_units=6, start=_card_start)


# --- phones -------------------------------------------------------------------------


def _calling_code(digits: str) -> str | None:
    if digits[:1] in ("1", "7"):
        return digits[:1]
    if digits[:2] in CALLING_CODES_2:
        return digits[:2]
    if digits[:2] in CALLING_PREFIXES_3:
        return digits[:3]
    return None


def _nanp(digits: str) -> bool:
    """NANP: 10 digits, an area code not starting with 0 or 1.

    Exchanges are not checked: "(555) 123-4567" is still written as a phone number.
    """
    return len(digits) == 10 and digits[0] in "23456789"


def _international(run: _Run, a: int, b: int, skip: int) -> bool:
    digits = "".join(d for t, d in zip(run.tokens[a:b], run.digits[a:b], strict=True) if t != "(0)")
    digits = digits[skip:]
    code = _calling_code(digits)
    if code is None:
        return False
    national = digits[len(code) :]
    if national.startswith("0") and code != "39":
        national = national[1:]  # "+44 020 ..." written with the trunk 0
    low, high = NATIONAL_LENGTHS.get(code, DEFAULT_NATIONAL_LENGTHS)
    if not low <= len(national) <= high or len(code) + len(national) > 15:
        return False
    return _nanp(national) if code == "1" else True


def _nanp_shape(run: _Run, a: int, b: int) -> bool:
    if run.tokens[a] == "1" and b - a == 4:
        a += 1  # 1-800-555-0199
    if b - a != 3 or "(" in run.tokens[a + 1] + run.tokens[a + 2]:
        return False
    sizes = [len(d) for d in run.digits[a:b]]
    return sizes == [3, 3, 4] and _nanp("".join(run.digits[a:b]))


def _phone_start(run: _Run, a: int) -> bool:
    """Whether a phone number could start at token `a` (cheap, before any window)."""
    first = run.tokens[a]
    if first[0] in "+(" or len(first) >= 2:
        return True
    return first == "1" and a + 1 < len(run.tokens) and len(run.digits[a + 1]) == 3


def _phone_ok(run: _Run, a: int, b: int) -> bool:
    if any(t[0] == "+" for t in run.tokens[a + 1 : b]):
        return False
    first, digits = run.tokens[a], "".join(run.digits[a:b])
    if first.startswith(("+", "(+")):
        return _international(run, a, b, 0)
    sizes = [len(d) for d in run.digits[a:b]]
    if sizes == [3, 2, 4]:
        return False  # the shape of an SSN (valid or not), never of a phone number
    if digits.startswith("00") and not first.startswith("("):
        shaped = _international(run, a, b, 2)
        bare = b - a == 1
    elif _nanp_shape(run, a, b):
        shaped, bare = True, False
    elif digits.startswith("0") and b - a > 1:
        shaped = 10 <= len(digits) <= 12 and 2 <= sizes[0] <= 5 and sizes[-1] >= 2
        shaped, bare = shaped and max(sizes) <= 8, False
        if not shaped and 9 <= len(digits) <= 12 and min(sizes) >= 2:
            shaped = bare = True  # 9 digits, or an unusual grouping: with a phone word
    else:
        shaped, bare = 10 <= len(digits) <= 12 and min(sizes) >= 2, True
    if not shaped or run.vetoed(a):
        return False
    return not bare or run.phone_word(a)


_PHONE_WINDOWS: dict[str, Any] = {"digits": (7, 17), "most_units": 8, "start": _phone_start}


def phones(match: re.Match[str]) -> Iterator[Span]:
    """The phone numbers in a run of digit groups (and `+`, parentheses)."""
    if _digit_count(match) < 7:
        return
    run = _run(match, _PHONE_TOKEN)
    segment: list[Span] = []
    for unit in run.units:
        if segment and not _JOINED.fullmatch(run.sep(unit[0])):
            yield from _windows(run, segment, _phone_ok, **_PHONE_WINDOWS)
            segment = []
        segment.append(unit)
    yield from _windows(run, segment, _phone_ok, **_PHONE_WINDOWS)

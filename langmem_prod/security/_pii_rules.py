"""What counts as PII: the table of rules, one or more per kind, in the order they run.

Rules:
- each row is a pattern that finds candidates and a function that confirms them (as the
  candidate's span, or spans inside it); rows run in table order (see `Redactor.find`);
- EMAIL: `local@domain.tld`, and the obfuscated forms ` @ `, `(at)`, `[at]`, `{at}`,
  `<at>`, `(arobase)`, with `.`, `(dot)`, `[dot]`, ` dot `, `(point)`; a spelled-out
  ` at ` needs a spelled-out dot or a mail word before it, and a common top-level
  domain; the local part is a single token (`john.smith`, not `john dot smith`); asset
  names such as `icon@2x.png` are not addresses;
- IBAN: a registry country code, in upper or lower case throughout, compact or grouped
  (spaces or dashes), with exactly that country's length, then its BBAN structure and
  mod 97 (`_pii_checks`);
- CARD and PHONE: digit runs (`_pii_numbers`);
- SSN: `123-45-6789`, `123 45 6789`, `123.45.6789`, or 9 bare digits after an SSN
  word, with the SSA's rules; never a piece of a longer number, never just after a
  reference word;
- IP: IPv6 (full, compressed, IPv4-mapped, with a zone id; at least one digit, so `::`
  and `a::b` in code are not addresses) before IPv4 (a dotted quad just after a
  version word is a version); an address may end a sentence (`from 10.0.0.1.`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from langmem_prod.security._pii_checks import BBAN_LENGTHS, iban_valid, ip_valid, ssn_valid
from langmem_prod.security._pii_context import (
    glued_after,
    glued_before,
    has_context,
    vetoed,
)
from langmem_prod.security._pii_numbers import CARD_RUN, PHONE_RUN, SP, cards, phones
from langmem_prod.security._pii_tables import COMMON_TLDS, FILE_EXTENSIONS

Span = tuple[int, int]
Confirm = Callable[[re.Match[str]], Iterable[Span]]


@dataclass(frozen=True, slots=True)
class Rule:
    """A kind of PII: a pattern that finds candidates, and what confirms them.

    `confirm` turns a candidate into the spans that are PII (none, the candidate, or
    windows of it); `hint` is a pattern every text the rule can match contains (a digit,
    an "@"): texts without it are not scanned.
    """

    kind: str
    pattern: re.Pattern[str]
    confirm: Confirm
    hint: re.Pattern[str] = re.compile(r"\d")

    def spans(self, text: str) -> Iterator[Span]:
        """Every span of `text` this rule confirms, left to right."""
        for match in self.pattern.finditer(text):
            yield from self.confirm(match)


# --- e-mail addresses ---------------------------------------------------------------
# Both rules are anchored on the "@" (or the spelled "at"), the rarest part, and read
# the local part backwards and the domain forwards from there.

_HS = r"[^\S\r\n]"  # horizontal space
_LOCAL = re.compile(r"[\w.+-][\w.+'\u2019-]{0,63}\Z")
_DOMAIN = re.compile(
    r"(?:[^\W_][\w-]{0,62}\.){1,8}([^\W\d_]{2,24}|xn--[a-z0-9-]{1,59})(?![\w-]|\.[^\W_])"
)
_AT = re.compile(rf"(?i)[(\[{{<]{_HS}?(?:at|@|arobase){_HS}?[)\]}}>]|a(?<={_HS}a)t(?={_HS})|@")
_DOT_WORD = r"(?:dot|point|punkt)"
_DOT = (
    rf"{_HS}{{0,3}}(?:\({_HS}?(?:{_DOT_WORD}|\.){_HS}?\)|\[{_HS}?(?:{_DOT_WORD}|\.){_HS}?\]"
    rf"|\{{{_HS}?dot{_HS}?\}}|<{_HS}?dot{_HS}?>){_HS}{{0,3}}|{_HS}{{1,3}}{_DOT_WORD}{_HS}{{1,3}}"
    r"|\."
)
_LABEL = r"[^\W_][\w-]{0,62}"
_OBFUSCATED_DOMAIN = re.compile(
    rf"(?i){_HS}{{0,3}}({_LABEL}(?:(?:{_DOT}){_LABEL}){{1,6}})(?![\w-])"
)
_LOCAL_BEFORE = re.compile(rf"([\w.+-]{{1,64}}){_HS}{{0,3}}\Z")
_DOT_SPLIT = re.compile(rf"(?i){_DOT}")
_SPELLED_DOT = re.compile(rf"(?i){_HS}{_DOT_WORD}{_HS}|[(\[{{<]")
# Words before a spelled-out " at " that are not the local part of an address.
_NOT_LOCAL = frozenset(
    {"me", "us", "him", "her", "them", "you", "it", "this", "that", "here", "there"}
    | {"home", "work", "is", "be"}
)
_BEFORE_LOCAL = re.compile(r"[\w.+@-]")


def _emails(match: re.Match[str]) -> Iterator[Span]:
    text, at = match.string, match.start()
    local = _LOCAL.search(text, max(0, at - 64), at)
    domain = _DOMAIN.match(text, at + 1)
    if local is None or domain is None or domain.group(1).lower() in FILE_EXTENSIONS:
        return
    start = local.start()
    if not (start and _BEFORE_LOCAL.match(text, start - 1)):
        yield start, domain.end()


def _obfuscated_emails(match: re.Match[str]) -> Iterator[Span]:
    text = match.string
    local = _LOCAL_BEFORE.search(text, max(0, match.start() - 70), match.start())
    domain = _OBFUSCATED_DOMAIN.match(text, match.end())
    if local is None or domain is None:
        return
    start = local.start(1)
    if start and _BEFORE_LOCAL.match(text, start - 1):
        return  # the local part runs on: "a.b.c...(at)" longer than 64, or "x@y (at)"
    tld = _DOT_SPLIT.split(domain.group(1))[-1].lower()
    if not tld.isalpha() or not 2 <= len(tld) <= 24 or tld in FILE_EXTENSIONS:
        return
    if match.group() == "@" and not _SPELLED_DOT.search(domain.group(1)):
        spaced = text[match.start() - 1 : match.start()].isspace() and domain.start(1) > match.end()
        if not spaced:
            return  # "a@b.c" is the plain rule's; "@john.doe" a handle; "ada @ b.c" ours
    if match.group().strip().lower() == "at":  # spelled out: "ada at example dot com"
        if local.group(1).lower() in _NOT_LOCAL or tld not in COMMON_TLDS:
            return
        if not _SPELLED_DOT.search(domain.group(1)) and not has_context(text, start, "mail"):
            return
    yield start, domain.end()


# --- IBANs, SSNs, IP addresses ------------------------------------------------------
# Patterns start with a character class (a digit, a colon) and check what comes before
# with a lookbehind: the regex engine then skips ahead to candidates instead of trying
# every position.

_IBAN_BODY = {
    n: re.compile(rf"(?:(?:{SP}|-)?[A-Za-z0-9]){{{n}}}(?!\w)") for n in set(BBAN_LENGTHS.values())
}


def _ibans(match: re.Match[str]) -> Iterator[Span]:
    text, start = match.string, match.start() - 2
    length = BBAN_LENGTHS.get(text[start : start + 2].upper())
    body = _IBAN_BODY[length].match(text, match.end()) if length else None
    if body is None:
        return
    iban = text[start : body.end()]
    if (iban.isupper() or iban.islower()) and iban_valid(iban.replace("-", "")):
        yield start, body.end()  # one case throughout: "LV80 bANK ..." is not written


def _ssns(match: re.Match[str]) -> Iterator[Span]:
    text, (start, end) = match.string, match.span()
    if glued_before(text, start) or glued_after(text, end) or vetoed(text, start):
        return
    if re.match(r"[ .-]?\d", text[end : end + 2]):
        return  # the start of a longer number
    if not match.group(2) and not has_context(text, start, "ssn"):
        return  # 9 bare digits are an SSN only after an SSN word
    if ssn_valid(match.group()):
        yield start, end


def _ipv4s(match: re.Match[str]) -> Iterator[Span]:
    if ip_valid(match.group()) and not vetoed(match.string, match.start(), frozenset({"version"})):
        yield match.span()


_IPV6 = re.compile(
    r"(?<![\w:.%])[0-9A-Fa-f:]{2,39}(?:(?<=:)(?:\d{1,3}\.){3}\d{1,3})?"
    r"(?:%[0-9A-Za-z._-]{1,32})?(?![\w:]|\.\w)"
)
_HEX_BEFORE = re.compile(r"[0-9A-Fa-f:]{0,38}\Z")


def _ipv6s(match: re.Match[str]) -> Iterator[Span]:
    """From a "::" or "x:y:", back to where the address starts, then the address."""
    text, colon = match.string, match.start()
    start = _HEX_BEFORE.search(text, max(0, colon - 38), colon)
    found = _IPV6.match(text, start.start() if start else colon)
    if found is None or found.end() <= colon:
        return
    candidate = found.group()
    if any(ch.isdigit() for ch in candidate.split("%")[0]) and ip_valid(candidate):
        yield found.span()


RULES: tuple[Rule, ...] = (
    Rule("EMAIL", re.compile("@"), _emails, hint=re.compile("@")),
    Rule("EMAIL", _AT, _obfuscated_emails, hint=re.compile("(?i)at|@|arobase")),
    Rule("IBAN", re.compile(r"[0-9](?<=(?<!\w)[A-Za-z]{2}[0-9])[0-9]"), _ibans),
    Rule("CARD", CARD_RUN, cards),
    Rule("SSN", re.compile(r"(\d(?<![\w+]\d)\d\d)([-. ]?)(\d\d)\2(\d{4})"), _ssns),
    Rule("IP", re.compile(r":(?=[0-9A-Fa-f]{0,4}:)"), _ipv6s),
    Rule("IP", re.compile(r"\d(?<![\w.]\d)\d{0,2}(?:\.\d{1,3}){3}(?!\w|\.\d)"), _ipv4s),
    Rule("PHONE", PHONE_RUN, phones),
)

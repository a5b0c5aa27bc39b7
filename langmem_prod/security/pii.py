"""PII redaction before anything is stored: what counts as PII is a table of rules.

Rules:
- the kinds are EMAIL, PHONE, SSN, CARD, IBAN and IP; each has one or more rows in
  `RULES`, a pattern and a check (formats and checks: `_pii_rules`, `_pii_numbers`,
  `_pii_checks`; reference data: `_pii_tables`; context words: `_pii_context`);
- rules run in table order and findings never overlap: a span taken by one rule is not
  redacted again by a later one (an IBAN's digits are not also a phone number);
- "mask" replaces a finding by `[KIND]`; "hash" by `[KIND:<12 hex>]`, an HMAC-SHA256
  under the tenant's secret, so equal values stay linkable without being readable;
- values are redacted at any depth, without recursion: every string, dict keys
  included, integers of 9+ digits, JSON held in strings; a key is its value's context
  (`{"ssn": "123456789"}`); see `_pii_walk`;
- messages are redacted in every field (the fields of `model_dump`, so a field added to
  a message class later is covered too): text and content blocks, tool call arguments,
  invalid tool calls and tool call chunks, `additional_kwargs` (OpenAI `tool_calls` /
  `function_call` argument strings redacted as JSON, and kept valid JSON),
  `response_metadata`, `name`, a tool message's artifact; the values of `type`, `id` and
  `tool_call_id` are kept at any depth, so message types, block types and tool call /
  tool message pairing survive; base64 payloads (images) are kept;
- not detected: names, postal addresses, dates of birth, national ids other than U.S.
  SSNs, numbers split by letters or spelled out in words, PII inside images or base64.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.messages import BaseMessage

from langmem_prod.errors import ConfigurationError
from langmem_prod.security._pii_checks import iban_valid, ip_valid, luhn, ssn_valid
from langmem_prod.security._pii_rules import RULES, Rule
from langmem_prod.security._pii_walk import redact_tree

__all__ = [
    "KINDS",
    "RULES",
    "Finding",
    "Redactor",
    "Rule",
    "iban_valid",
    "ip_valid",
    "luhn",
    "ssn_valid",
]

Mode = Literal["mask", "hash"]
KINDS: tuple[str, ...] = tuple(dict.fromkeys(rule.kind for rule in RULES))
MESSAGE_KEPT_KEYS = frozenset({"type", "id", "tool_call_id"})
_HINT = re.compile(r"\d|(?i:at)")  # what a key's context can change a finding about
_ANY_HINT = re.compile(r"\d|@|(?i:at|arobase)")  # every rule's hint
# Keys that say nothing about their value ("text" is also a phone word: "text me at").
_PLAIN_KEYS = frozenset({"", "text", "content", "value", "data", "body", "message", "note"})
_KEY_WORDS = re.compile(r"(?<=[a-z])(?=[A-Z])|[_\-.]+")


@dataclass(frozen=True, slots=True)
class Finding:
    """One piece of PII found: its kind and where it was."""

    kind: str
    start: int
    end: int


class Redactor:
    """Finds and redacts PII in texts, JSON values and chat messages.

    Example:
        >>> redactor = Redactor()
        >>> redactor.redact("Mail ada@example.com or call +44 20 7946 0958.")
        'Mail [EMAIL] or call [PHONE].'
        >>> redactor.redact("Tel. 030 12345678, IBAN de89 3704 0044 0532 0130 00, from ::1.")
        'Tel. [PHONE], IBAN [IBAN], from [IP].'
        >>> redactor.redact_value({"ssn": "123456789", "ada@example.com": [4111111111111111]})
        {'ssn': '[SSN]', '[EMAIL]': ['[CARD]']}
        >>> Redactor(mode="hash", secret=b"tenant secret").redact("ada@example.com")[:7]
        '[EMAIL:'

    Args:
        kinds: the kinds to redact (default: all of `KINDS`).
        mode: "mask" or "hash".
        secret: the HMAC key of "hash" mode (per tenant).
    """

    def __init__(
        self, kinds: Iterable[str] | None = None, *, mode: Mode = "mask", secret: bytes = b""
    ) -> None:
        known = set(KINDS)
        wanted = set(kinds) if kinds is not None else known
        if wanted - known:
            raise ConfigurationError(
                f"unknown PII kinds {sorted(wanted - known)}; use {sorted(known)}"
            )
        if mode not in ("mask", "hash"):
            raise ConfigurationError("mode must be 'mask' or 'hash'")
        if mode == "hash" and not secret:
            raise ConfigurationError("hash mode needs a secret (per tenant) for the HMAC")
        self.rules: tuple[Rule, ...] = tuple(rule for rule in RULES if rule.kind in wanted)
        self.mode = mode
        self._secret = secret

    def find(self, text: str) -> list[Finding]:
        """Every piece of PII in `text`, in order, without overlaps.

        >>> [(f.kind, f.start, f.end) for f in Redactor().find("SSN 123-45-6789")]
        [('SSN', 4, 15)]
        """
        if not _ANY_HINT.search(text):
            return []
        hints: dict[re.Pattern[str], bool] = {}
        starts: list[int] = []
        taken: list[Finding] = []
        for rule in self.rules:
            if rule.hint not in hints:
                hints[rule.hint] = rule.hint.search(text) is not None
            if not hints[rule.hint]:
                continue
            for start, end in rule.spans(text):
                i = bisect_right(starts, start)
                if (i and taken[i - 1].end > start) or (i < len(taken) and taken[i].start < end):
                    continue  # overlaps a finding of an earlier rule
                starts.insert(i, start)
                taken.insert(i, Finding(rule.kind, start, end))
        return taken

    def _replacement(self, kind: str, value: str) -> str:
        if self.mode == "mask":
            return f"[{kind}]"
        digest = hmac.new(self._secret, value.encode(), hashlib.sha256).hexdigest()[:12]
        return f"[{kind}:{digest}]"

    def _redact(self, text: str, findings: Iterable[Finding], shift: int = 0) -> str:
        out, last = [], 0
        for finding in findings:
            start, end = finding.start - shift, finding.end - shift
            out += [text[last:start], self._replacement(finding.kind, text[start:end])]
            last = end
        return "".join(out) + text[last:]

    def redact(self, text: str) -> str:
        """`text` with every piece of PII replaced.

        >>> Redactor().redact("SSN 123-45-6789, card 4111 1111 1111 1111")
        'SSN [SSN], card [CARD]'
        """
        return self._redact(text, self.find(text))

    def _redact_in(self, text: str, context: str) -> str:
        """`text` redacted as if it followed `context` (a JSON key: "phone", "ssn"...)."""
        words = _KEY_WORDS.sub(" ", context)[-40:]
        if words.lower() in _PLAIN_KEYS or not _HINT.search(text):
            return self.redact(text)
        prefix = words + ": "
        findings = [f for f in self.find(prefix + text) if f.start >= len(prefix)]
        return self._redact(text, findings, shift=len(prefix))

    def redact_value(self, value: Any) -> Any:
        """A copy of a JSON value with PII redacted at any depth, dict keys included.

        >>> Redactor().redact_value({"notes": [{"from": "10.0.0.1"}], "n": 7})
        {'notes': [{'from': '[IP]'}], 'n': 7}
        """
        return redact_tree(value, self._redact_in)

    def redact_message(self, message: BaseMessage) -> BaseMessage:
        """A copy of `message` with PII redacted in every field (ids and types kept).

        >>> from langchain_core.messages import AIMessage
        >>> call = {"name": "mail", "args": {"to": "ada@example.com"}, "id": "c1"}
        >>> message = AIMessage("", id="m1", tool_calls=[call])
        >>> redacted = Redactor().redact_message(message)
        >>> redacted.tool_calls[0]["args"], redacted.tool_calls[0]["id"], redacted.id
        ({'to': '[EMAIL]'}, 'c1', 'm1')
        """
        fields = redact_tree(message.model_dump(), self._redact_in, keep=MESSAGE_KEPT_KEYS)
        return message.model_copy(update=fields)

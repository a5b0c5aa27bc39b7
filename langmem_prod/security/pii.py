"""PII redaction before anything is stored: what counts as PII is a table of rules.

Rules:
- each kind has a pattern that finds candidates and, where one exists, a check that
  confirms them: card numbers must pass Luhn, IBANs the ISO 7064 mod-97 check with their
  country's length, US SSNs the SSA's area/group/serial rules, IP addresses the
  `ipaddress` parser; phone numbers need 10-15 digits (international `+` or NANP);
- kinds run in table order and never overlap: a span taken by one is not redacted again;
- "mask" replaces a finding by `[KIND]`; "hash" by `[KIND:<12 hex>]`, an HMAC-SHA256
  under the tenant's secret, so equal values stay linkable without being readable;
- values are redacted recursively (every string in a JSON value, keys kept), messages in
  their text content and text blocks.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.messages import BaseMessage

from langmem_prod.errors import ConfigurationError

Mode = Literal["mask", "hash"]


def luhn(digits: str) -> bool:
    """Whether a string of digits passes the Luhn check.

    >>> luhn("4111111111111111"), luhn("4111111111111112")
    (True, False)
    """
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AT": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29, "CH": 21, "CY": 28,
    "CZ": 24, "DE": 22, "DK": 18, "EE": 20, "ES": 24, "FI": 18, "FR": 27, "GB": 22, "GI": 23,
    "GR": 27, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IS": 26, "IT": 27, "LI": 21, "LT": 20,
    "LU": 20, "LV": 21, "MC": 27, "MT": 31, "NL": 18, "NO": 15, "PL": 28, "PT": 25, "RO": 24,
    "SA": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "TR": 26,
}  # fmt: skip


def iban_valid(text: str) -> bool:
    """Whether `text` (spaces allowed) is an IBAN of the right length with valid checksum.

    >>> iban_valid("GB82 WEST 1234 5698 7654 32"), iban_valid("GB82 WEST 1234 5698 7654 33")
    (True, False)
    """
    iban = text.replace(" ", "").upper()
    if _IBAN_LENGTHS.get(iban[:2]) != len(iban):
        return False
    moved = iban[4:] + iban[:4]
    return int("".join(str(int(ch, 36)) for ch in moved)) % 97 == 1


def ssn_valid(text: str) -> bool:
    """Whether a 9-digit SSN (dashes allowed) follows the SSA's assignment rules."""
    digits = text.replace("-", "").replace(" ", "")
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def ip_valid(text: str) -> bool:
    """Whether `text` is an IPv4 or IPv6 address."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _digits_between(low: int, high: int) -> Callable[[str], bool]:
    def check(text: str) -> bool:
        return low <= sum(ch.isdigit() for ch in text) <= high

    return check


@dataclass(frozen=True, slots=True)
class Rule:
    """A kind of PII: where candidates are, and what confirms one."""

    kind: str
    pattern: re.Pattern[str]
    check: Callable[[str], bool] | None = None


RULES: tuple[Rule, ...] = (
    Rule("EMAIL", re.compile(r"\b[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")),
    Rule(
        "IBAN",
        re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b"),
        iban_valid,
    ),
    Rule(
        "CARD",
        re.compile(r"\b\d(?:[ -]?\d){12,18}\b"),
        lambda text: luhn(re.sub(r"\D", "", text)),
    ),
    Rule("SSN", re.compile(r"\b\d{3}-\d{2}-\d{4}\b"), ssn_valid),
    Rule(
        "IP",
        re.compile(
            r"(?<![\w.:])(?:\d{1,3}(?:\.\d{1,3}){3}|"
            r"(?:[0-9A-Fa-f]{1,4}:){2,7}[0-9A-Fa-f]{0,4}|"
            r"(?:[0-9A-Fa-f]{1,4}:){1,6}:[0-9A-Fa-f:]{0,30})(?![\w.:])"
        ),
        ip_valid,
    ),
    Rule(
        "PHONE",
        re.compile(
            r"(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,4}"
            r"|(?<!\d)(?:\(\d{3}\)\s?|\d{3}[ .-])\d{3}[ .-]\d{4})(?!\d)"
        ),
        _digits_between(10, 15),
    ),
)


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
        >>> Redactor(mode="hash", secret=b"tenant secret").redact("ada@example.com")[:7]
        '[EMAIL:'

    Args:
        kinds: the kinds to redact (default: all of `RULES`).
        mode: "mask" or "hash".
        secret: the HMAC key of "hash" mode (per tenant).
    """

    def __init__(
        self, kinds: Iterable[str] | None = None, *, mode: Mode = "mask", secret: bytes = b""
    ) -> None:
        known = {rule.kind for rule in RULES}
        wanted = set(kinds) if kinds is not None else known
        if wanted - known:
            raise ConfigurationError(
                f"unknown PII kinds {sorted(wanted - known)}; use {sorted(known)}"
            )
        if mode not in ("mask", "hash"):
            raise ConfigurationError("mode must be 'mask' or 'hash'")
        if mode == "hash" and not secret:
            raise ConfigurationError("hash mode needs a secret (per tenant) for the HMAC")
        self.rules = tuple(rule for rule in RULES if rule.kind in wanted)
        self.mode = mode
        self._secret = secret

    def find(self, text: str) -> list[Finding]:
        """Every piece of PII in `text`, in order, without overlaps."""
        taken: list[Finding] = []
        for rule in self.rules:
            for match in rule.pattern.finditer(text):
                start, end = match.span()
                if any(f.start < end and start < f.end for f in taken):
                    continue
                if rule.check is None or rule.check(match.group()):
                    taken.append(Finding(rule.kind, start, end))
        return sorted(taken, key=lambda f: f.start)

    def _replacement(self, kind: str, value: str) -> str:
        if self.mode == "mask":
            return f"[{kind}]"
        digest = hmac.new(self._secret, value.encode(), hashlib.sha256).hexdigest()[:12]
        return f"[{kind}:{digest}]"

    def redact(self, text: str) -> str:
        """`text` with every piece of PII replaced."""
        out, last = [], 0
        for finding in self.find(text):
            out += [
                text[last : finding.start],
                self._replacement(finding.kind, text[finding.start : finding.end]),
            ]
            last = finding.end
        return "".join(out) + text[last:]

    def redact_value(self, value: Any) -> Any:
        """A JSON value with every string redacted (dict keys kept)."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {k: self.redact_value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.redact_value(v) for v in value]
        return value

    def _redact_block(self, block: Any) -> Any:
        if isinstance(block, str):
            return self.redact(block)
        if isinstance(block, dict) and isinstance(block.get("text"), str):
            return {**block, "text": self.redact(block["text"])}
        return block  # images, tool references: no text to redact

    def redact_message(self, message: BaseMessage) -> BaseMessage:
        """A copy of `message` with its text content and text blocks redacted."""
        content = message.content
        if isinstance(content, str):
            new_content: Any = self.redact(content)
        else:
            new_content = [self._redact_block(block) for block in content]
        return message.model_copy(update={"content": new_content})

"""PII redaction: a table of true and false positives for every kind."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from langmem_prod.errors import ConfigurationError
from langmem_prod.security import Redactor

# (text, kinds that must be found in it, in order)
CASES = [
    # emails
    ("write to ada.lovelace+notes@example.co.uk today", ["EMAIL"]),
    ("user@localhost is not an address with a domain", []),
    ("the @mention and a@b are not emails", []),
    # phones: international and NANP
    ("call +44 20 7946 0958 now", ["PHONE"]),
    ("call +1 (415) 555-2671", ["PHONE"]),
    ("ring +49 30 901820", ["PHONE"]),
    ("(415) 555-2671 is the office", ["PHONE"]),
    ("415-555-2671 or 415.555.2671", ["PHONE", "PHONE"]),
    ("order 12345 shipped on 2026-11-21", []),
    ("version 1.2.3 and build 2026", []),
    ("+12 is a score, not a phone", []),
    # US SSNs
    ("SSN 123-45-6789 on file", ["SSN"]),
    ("000-12-3456 and 666-12-3456 and 900-12-3456 are never issued", []),
    ("123-00-6789 and 123-45-0000 are invalid", []),
    # cards (Luhn)
    ("card 4111 1111 1111 1111 exp 12/29", ["CARD"]),
    ("amex 3782-822463-10005", ["CARD"]),
    ("5555555555554444", ["CARD"]),
    ("4111 1111 1111 1112 fails Luhn", []),
    ("tracking 1234567890123 is not a card", []),
    # IBANs (mod 97 and length)
    ("IBAN GB82 WEST 1234 5698 7654 32", ["IBAN"]),
    ("pay DE89370400440532013000 please", ["IBAN"]),
    ("GB82 WEST 1234 5698 7654 33 has a bad checksum", []),
    ("DE8937040044053201300 is a digit short", []),
    # IP addresses
    ("from 192.168.1.20 and 10.0.0.1", ["IP", "IP"]),
    ("v6 2001:db8::8a2e:370:7334 and ::1 loopback", ["IP", "IP"]),
    ("999.1.1.1 is not an address", []),
    ("the time was 12:30:45 today", []),
    # mixed
    (
        "Ada (ada@example.com, +1 415 555 2671) paid with 4111111111111111",
        ["EMAIL", "PHONE", "CARD"],
    ),
]


@pytest.mark.parametrize(("text", "kinds"), CASES, ids=[c[0][:30] for c in CASES])
def test_true_and_false_positives(text: str, kinds: list[str]) -> None:
    assert [f.kind for f in Redactor().find(text)] == kinds


def test_masking_and_hashing() -> None:
    text = "ada@example.com paid 4111 1111 1111 1111"
    assert Redactor().redact(text) == "[EMAIL] paid [CARD]"
    hashed = Redactor(mode="hash", secret=b"acme").redact(text)
    assert "ada@" not in hashed and hashed.startswith("[EMAIL:")
    assert hashed == Redactor(mode="hash", secret=b"acme").redact(text)  # linkable
    assert hashed != Redactor(mode="hash", secret=b"globex").redact(text)  # per tenant
    assert Redactor(["EMAIL"]).redact(text) == "[EMAIL] paid 4111 1111 1111 1111"


def test_values_and_messages() -> None:
    value = {"email": "ada@example.com", "nested": [{"ip": "10.0.0.1"}, 7, None], "n": 1.5}
    assert Redactor().redact_value(value) == {
        "email": "[EMAIL]",
        "nested": [{"ip": "[IP]"}, 7, None],
        "n": 1.5,
    }
    message = HumanMessage("reach me at ada@example.com", id="m1")
    redacted = Redactor().redact_message(message)
    assert redacted.content == "reach me at [EMAIL]" and redacted.id == "m1"
    assert message.content == "reach me at ada@example.com"  # the original is untouched
    blocks = AIMessage(
        [
            {"type": "text", "text": "SSN 123-45-6789"},
            {"type": "image_url", "image_url": {"url": "x"}},
        ]
    )
    assert Redactor().redact_message(blocks).content[0]["text"] == "SSN [SSN]"


def test_bad_settings() -> None:
    with pytest.raises(ConfigurationError, match="unknown PII kinds"):
        Redactor(["PASSPORT"])
    with pytest.raises(ConfigurationError, match="needs a secret"):
        Redactor(mode="hash")

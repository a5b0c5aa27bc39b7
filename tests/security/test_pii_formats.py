"""PII formats from issue 10: each written form is found whole, each look-alike is left alone."""

from __future__ import annotations

import pytest

from langmem_prod.security import Redactor
from langmem_prod.security._pii_tables import IBAN_FORMATS, IBAN_TERRITORIES
from langmem_prod.security.pii import KINDS, RULES, iban_valid

# (text, kind, the exact substring found)
FOUND = [
    # international phones and national UK / FR / DE formats, NANP
    ("call +44 20 7946 0958", "PHONE", "+44 20 7946 0958"),
    ("call 0044 20 7946 0958", "PHONE", "0044 20 7946 0958"),
    ("Berlin +49 30 12345678", "PHONE", "+49 30 12345678"),
    ("Paris +33 1 23 45 67 89", "PHONE", "+33 1 23 45 67 89"),
    ("office 020 7946 0958", "PHONE", "020 7946 0958"),
    ("mobile 07700 900123", "PHONE", "07700 900123"),
    ("bureau 01 23 45 67 89", "PHONE", "01 23 45 67 89"),
    ("portable 06.12.34.56.78", "PHONE", "06.12.34.56.78"),
    ("Büro 030 12345678", "PHONE", "030 12345678"),
    ("Handy 0151 23456789", "PHONE", "0151 23456789"),
    ("Zentrale (030) 1234567", "PHONE", "(030) 1234567"),
    ("office (415) 555-2671", "PHONE", "(415) 555-2671"),
    ("office 415.555.2671", "PHONE", "415.555.2671"),
    ("toll free 1-800-555-0199", "PHONE", "1-800-555-0199"),
    ("+1 (415) 555-2671 ext. 12", "PHONE", "+1 (415) 555-2671"),
    ("Tel.: +49 (0)30 901820", "PHONE", "+49 (0)30 901820"),
    # bare 10-digit numbers after a phone word, in several languages
    ("call 4155552671", "PHONE", "4155552671"),
    ("phone: 4155552671", "PHONE", "4155552671"),
    ("Tel.: 0301234567", "PHONE", "0301234567"),
    ("mobile 4155552671", "PHONE", "4155552671"),
    ("cell 4155552671", "PHONE", "4155552671"),
    ("Handy 0151234567", "PHONE", "0151234567"),
    ("téléphone 0123456789", "PHONE", "0123456789"),
    # SSNs with dashes, spaces, or none after an SSN word
    ("SSN 123-45-6789", "SSN", "123-45-6789"),
    ("SSN 123 45 6789", "SSN", "123 45 6789"),
    ("SSN 123456789", "SSN", "123456789"),
    ("social security number 123456789", "SSN", "123456789"),
    # cards with any spacing
    ("card 4111 1111 1111 1111", "CARD", "4111 1111 1111 1111"),
    ("card 4111-1111-1111-1111", "CARD", "4111-1111-1111-1111"),
    ("card 41111111 11111111", "CARD", "41111111 11111111"),
    ("amex 3782 822463 10005", "CARD", "3782 822463 10005"),
    ("card 4111 1111 1111 1111 12/29", "CARD", "4111 1111 1111 1111"),
    # IBANs in any case, compact or grouped
    ("IBAN GB82 WEST 1234 5698 7654 32", "IBAN", "GB82 WEST 1234 5698 7654 32"),
    ("iban gb82 west 1234 5698 7654 32", "IBAN", "gb82 west 1234 5698 7654 32"),
    ("iban de89370400440532013000", "IBAN", "de89370400440532013000"),
    # IP addresses, at the end of a sentence too
    ("request from 10.0.0.1.", "IP", "10.0.0.1"),
    ("bind ::1", "IP", "::1"),
    ("mapped ::ffff:192.0.2.1 here", "IP", "::ffff:192.0.2.1"),
    ("zone fe80::1%eth0 up", "IP", "fe80::1%eth0"),
    ("url http://[2001:db8::1]:8080/", "IP", "2001:db8::1"),
    # e-mails, plain and obfuscated
    ("mail ada@example.com.", "EMAIL", "ada@example.com"),
    ("mail ada (at) example (dot) com", "EMAIL", "ada (at) example (dot) com"),
    ("mail ada [at] example.com", "EMAIL", "ada [at] example.com"),
    ("email: ada at example dot com", "EMAIL", "ada at example dot com"),
]

NOT_FOUND = [
    "2026-12-04T10:15:30Z",
    "on 12/04/2026 at 10:15",
    "v1.2.3.4",
    "version 1.2.3.4",
    "Windows 10.0.19045.1234",
    "semver 2.0.0-rc.1+build.5",
    "id 123e4567-e89b-12d3-a456-426614174000",
    "ISBN 978-3-16-148410-0",
    "ISBN 9783161484100",
    "ISBN-10 0-306-40615-2",
    "MAC 00:1A:2B:3C:4D:5E",
    "$1,234.56",
    "1.234,56 €",
    "order 1234567890",
    "Order #4111-2345-9876",
    "tracking 1Z999AA10123456784",
    "sha1 da39a3ee5e6b4b0d3255bfef95601890afd80709",
    "SKU 555-123-4567-XL",
    "1999-2024",
    "48.8566, 2.3522",
    "4111 1111 1111 1112",
    "GB82 WEST 1234 5698 7654 33",
    "078-05-1120",
    "666-12-3456",
    "call me at 10:30",
    "the meeting at example.com's office",
    "std::vector and x :: Int",
    "icon@2x.png",
    "4006381333931",
]


@pytest.mark.parametrize(("text", "kind", "found"), FOUND, ids=[c[0][:40] for c in FOUND])
def test_written_forms_are_found_whole(text: str, kind: str, found: str) -> None:
    findings = Redactor().find(text)
    assert [(f.kind, text[f.start : f.end]) for f in findings] == [(kind, found)]


@pytest.mark.parametrize("text", NOT_FOUND)
def test_look_alikes_are_left_alone(text: str) -> None:
    assert Redactor().find(text) == []
    assert Redactor().redact(text) == text


def test_every_registry_country_has_a_valid_iban() -> None:
    """An IBAN of every SWIFT registry country (and territory), built with its check
    digits, is found in upper and lower case; with the check digits off by one, none is."""
    for code in [*IBAN_FORMATS, *IBAN_TERRITORIES]:
        spec = IBAN_FORMATS[IBAN_TERRITORIES.get(code, code)]
        bban = "".join(
            ("7" if kind == "n" else "B") * int(n)
            for n, kind in ((part[:-1], part[-1]) for part in _split_spec(spec))
        )
        number = int("".join(str(int(ch, 36)) for ch in bban + code + "00"))
        iban = f"{code}{98 - number % 97:02d}{bban}"
        assert iban_valid(iban), code
        grouped = " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
        for text in (iban, grouped, grouped.lower()):
            assert Redactor().redact(f"pay {text} today") == "pay [IBAN] today", text
        wrong = f"{code}{(98 - number % 97) % 97 + 1:02d}{bban}"
        assert Redactor().find(f"pay {wrong} today") == [], wrong


def _split_spec(spec: str) -> list[str]:
    parts, current = [], ""
    for ch in spec:
        current += ch
        if ch.isalpha():
            parts.append(current)
            current = ""
    return parts


def test_the_table_lists_every_kind_the_tenant_settings_accept() -> None:
    assert set(KINDS) == {rule.kind for rule in RULES}
    assert set(KINDS) == {"EMAIL", "PHONE", "SSN", "CARD", "IBAN", "IP"}
    assert len(IBAN_FORMATS) >= 89


HOSTILE = [
    "1 " * 10_000,
    "1-" * 10_000,
    "1." * 10_000,
    "4111 " * 4_000,
    "123-45-" * 3_000,
    "(1) " * 5_000,
    "+1 " * 7_000,
    "0 " * 10_000,
    "1:" * 10_000,
    "a@" * 10_000,
    "a." * 10_000 + "@",
    "a@" + "b." * 10_000,
    "ada at " * 3_000,
    "a (at) b (dot) " * 1_500,
    "DE89 " * 4_000,
    "a" * 20_000,
    ":" * 20_000,
]


@pytest.mark.parametrize("text", HOSTILE, ids=[t[:8] for t in HOSTILE])
def test_hostile_texts_end(text: str) -> None:
    """Runs of look-alike fragments: no pattern backtracks without bound (the suite's
    timeout would stop a quadratic one) and nothing is found in them."""
    assert Redactor().redact(text) == text

"""The checks that confirm a candidate: check digits, registries, assignment rules.

Rules:
- a card number passes Luhn and has a card network's prefix and length (the prefix is
  waived after a card word, see `_pii_numbers`);
- an IBAN has a registry country, two check digits, that country's BBAN structure and
  length, and passes ISO 7064 mod 97-10 (spaces and case do not matter);
- an SSN's area is not 000, 666 or 900-999, its group not 00, its serial not 0000, and
  it is not one of the numbers the SSA voided after they were printed;
- an IP address is what `ipaddress` parses (IPv6 with or without a zone id).
"""

from __future__ import annotations

import ipaddress
import re

from langmem_prod.security._pii_tables import (
    CARD_NETWORKS,
    IBAN_FORMATS,
    IBAN_TERRITORIES,
    SSN_BLACKLIST,
)


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


_NETWORKS_BY_DIGIT: dict[str, list[tuple[str, str, tuple[int, ...]]]] = {}
for _network in CARD_NETWORKS:  # indexed by every leading digit the range covers
    for _digit in range(int(_network[0][0]), int(_network[1][0]) + 1):
        _NETWORKS_BY_DIGIT.setdefault(str(_digit), []).append(_network)


def card_network_ok(digits: str) -> bool:
    """Whether a number has the prefix and length of a card network.

    >>> card_network_ok("4111111111111111"), card_network_ok("9780306406157")
    (True, False)
    """
    return any(
        first <= digits[: len(first)] <= last and len(digits) in lengths
        for first, last, lengths in _NETWORKS_BY_DIGIT.get(digits[:1], ())
    )


_BBAN_PIECE = {"n": "[0-9]", "a": "[A-Z]", "c": "[A-Z0-9]"}


def _bban(spec: str) -> re.Pattern[str]:
    return re.compile(
        "".join(f"{_BBAN_PIECE[kind]}{{{n}}}" for n, kind in re.findall(r"(\d+)([nac])", spec))
    )


BBANS: dict[str, re.Pattern[str]] = {code: _bban(spec) for code, spec in IBAN_FORMATS.items()}
BBANS |= {code: BBANS[parent] for code, parent in IBAN_TERRITORIES.items()}
BBAN_LENGTHS: dict[str, int] = {
    code: sum(int(n) for n in re.findall(r"\{(\d+)\}", bban.pattern))
    for code, bban in BBANS.items()
}


def iban_valid(text: str) -> bool:
    """Whether `text` (spaces allowed, any case) is an IBAN: registry format and mod 97.

    >>> iban_valid("GB82 WEST 1234 5698 7654 32"), iban_valid("gb82 west 1234 5698 7654 33")
    (True, False)
    """
    iban = re.sub(r"\s", "", text).upper()
    bban = BBANS.get(iban[:2])
    if bban is None or not iban[2:4].isdigit() or not bban.fullmatch(iban[4:]):
        return False
    moved = iban[4:] + iban[:4]
    return int("".join(str(int(ch, 36)) for ch in moved)) % 97 == 1


def ssn_valid(text: str) -> bool:
    """Whether a 9-digit SSN (dashes or spaces allowed) follows the SSA's rules.

    >>> ssn_valid("123-45-6789"), ssn_valid("078-05-1120"), ssn_valid("900-12-3456")
    (True, False, False)
    """
    digits = re.sub(r"\D", "", text)
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return (
        len(digits) == 9
        and area not in ("000", "666")
        and area[0] != "9"
        and group != "00"
        and serial != "0000"
        and digits not in SSN_BLACKLIST
    )


def ip_valid(text: str) -> bool:
    """Whether `text` is an IPv4 or IPv6 address (IPv6 may carry a zone id).

    >>> ip_valid("10.0.0.1"), ip_valid("fe80::1%eth0"), ip_valid("999.1.1.1")
    (True, True, False)
    """
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True

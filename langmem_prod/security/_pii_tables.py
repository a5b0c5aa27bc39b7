"""The reference data of PII detection: registries and word lists, no logic.

Rules:
- IBAN formats are the BBAN structures of the SWIFT IBAN registry (release 100, 89
  countries): `n` digits, `a` upper-case letters, `c` letters or digits; the territories
  the registry lists under a country (e.g. Guadeloupe under France) take its format;
- card networks are (first prefix, last prefix, lengths): a number belongs to a network
  when its leading digits fall in the range and its length is one of the network's;
- calling codes follow ITU-T E.164's prefix-free zones; national numbers have the
  lengths of their country's numbering plan where it is listed, 6 to 12 digits otherwise;
- context words are lower-case words looked up among the words just before a candidate;
  the nearest one decides (a phone word allows a bare number, a reference word vetoes).
"""

from __future__ import annotations

# ISO 13616 BBAN structures, SWIFT IBAN registry release 100 (the IBAN adds 4 characters).
IBAN_FORMATS: dict[str, str] = {
    "AD": "4n4n12c", "AE": "3n16n", "AL": "8n16c", "AT": "5n11n", "AZ": "4a20c",
    "BA": "3n3n8n2n", "BE": "3n7n2n", "BG": "4a4n2n8c", "BH": "4a14c", "BI": "5n5n11n2n",
    "BR": "8n5n10n1a1c", "BY": "4c4n16c", "CH": "5n12c", "CR": "4n14n", "CY": "3n5n16c",
    "CZ": "4n16n", "DE": "8n10n", "DJ": "5n5n11n2n", "DK": "4n9n1n", "DO": "4c20n",
    "EE": "2n14n", "EG": "4n4n17n", "ES": "4n4n1n1n10n", "FI": "3n11n", "FK": "2a12n",
    "FO": "4n9n1n", "FR": "5n5n11c2n", "GB": "4a6n8n", "GE": "2a16n", "GI": "4a15c",
    "GL": "4n9n1n", "GR": "3n4n16c", "GT": "4c20c", "HN": "4a20n", "HR": "7n10n",
    "HU": "3n4n1n15n1n", "IE": "4a6n8n", "IL": "3n3n13n", "IQ": "4a3n12n", "IS": "4n2n6n10n",
    "IT": "1a5n5n12c", "JO": "4a4n18c", "KW": "4a22c", "KZ": "3n13c", "LB": "4n20c",
    "LC": "4a24c", "LI": "5n12c", "LT": "5n11n", "LU": "3n13c", "LV": "4a13c", "LY": "3n3n15n",
    "MC": "5n5n11c2n", "MD": "2c18c", "ME": "3n13n2n", "MK": "3n10c2n", "MN": "4n12n",
    "MR": "5n5n11n2n", "MT": "4a5n18c", "MU": "4a2n2n12n3n3a", "NI": "4a20n", "NL": "4a10n",
    "NO": "4n6n1n", "OM": "3n16c", "PK": "4a16c", "PL": "8n16n", "PS": "4a21c",
    "PT": "4n4n11n2n", "QA": "4a21c", "RO": "4a16c", "RS": "3n13n2n", "RU": "9n5n15c",
    "SA": "2n18c", "SC": "4a2n2n16n3a", "SD": "2n12n", "SE": "3n16n1n", "SI": "5n8n2n",
    "SK": "4n6n10n", "SM": "1a5n5n12c", "SO": "4n3n12n", "ST": "4n4n11n2n", "SV": "4a20n",
    "TL": "3n14n2n", "TN": "2n3n13n2n", "TR": "5n1n16c", "UA": "6n19c", "VA": "3n15n",
    "VG": "4a16n", "XK": "4n10n2n", "YE": "4a4n18c",
}  # fmt: skip

# Territories the registry includes in another country's IBAN format.
IBAN_TERRITORIES: dict[str, str] = {
    "AX": "FI", "BL": "FR", "GF": "FR", "GG": "GB", "GP": "FR", "IM": "GB", "JE": "GB",
    "MF": "FR", "MQ": "FR", "NC": "FR", "PF": "FR", "PM": "FR", "RE": "FR", "TF": "FR",
    "WF": "FR", "YT": "FR",
}  # fmt: skip


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_MAESTRO = (16, 17, 18, 19)
# (first prefix, last prefix, lengths). Visa's 13-digit numbers are no longer issued and
# collide with EAN-13 barcodes; Maestro's short lengths likewise.
CARD_NETWORKS: tuple[tuple[str, str, tuple[int, ...]], ...] = (
    ("4", "4", (16, 19)),  # Visa
    ("51", "55", (16,)),  # Mastercard
    ("2221", "2720", (16,)),  # Mastercard 2-series
    ("34", "34", (15,)),  # American Express
    ("37", "37", (15,)),
    ("300", "305", (14, 16, 17, 18, 19)),  # Diners Club
    ("36", "36", (14, 16, 17, 18, 19)),
    ("38", "39", (14, 16, 17, 18, 19)),
    ("3528", "3589", (16, 17, 18, 19)),  # JCB
    ("6011", "6011", (16, 17, 18, 19)),  # Discover
    ("644", "649", (16, 17, 18, 19)),
    ("65", "65", (16, 17, 18, 19)),
    ("62", "62", (16, 17, 18, 19)),  # UnionPay
    ("50", "50", _MAESTRO),  # Maestro
    ("56", "69", _MAESTRO),
    ("2200", "2204", (16, 17, 18, 19)),  # Mir
    ("9792", "9792", (16,)),  # Troy
)

# E.164 country calling codes are prefix-free: 1 and 7 alone; these 2-digit codes; and
# 3-digit codes under the remaining 2-digit prefixes of zones 2 to 9.
CALLING_CODES_2 = _words(
    """
    20 27 30 31 32 33 34 36 39 40 41 43 44 45 46 47 48 49 51 52 53 54 55 56 57 58 60 61
    62 63 64 65 66 81 82 84 86 90 91 92 93 94 95 98
    """
)
CALLING_PREFIXES_3 = _words(
    """
    21 22 23 24 25 26 29 35 37 38 42 50 59 67 68 69 80 85 87 88 96 97 99
    """
)
# National significant number lengths (without the trunk 0) of common numbering plans.
NATIONAL_LENGTHS: dict[str, tuple[int, int]] = {
    "1": (10, 10), "7": (10, 10), "20": (9, 10), "27": (9, 9), "30": (10, 10),
    "31": (9, 9), "32": (8, 9), "33": (9, 9), "34": (9, 9), "36": (8, 9), "39": (6, 11),
    "40": (9, 9), "41": (9, 9), "43": (4, 13), "44": (9, 10), "45": (8, 8), "46": (7, 9),
    "47": (8, 8), "48": (9, 9), "49": (6, 13), "52": (10, 10), "55": (10, 11),
    "61": (9, 9), "64": (8, 10), "81": (9, 10), "82": (8, 10), "86": (8, 11),
    "90": (10, 10), "91": (10, 10), "351": (9, 9), "352": (6, 11), "353": (7, 9),
    "358": (6, 12),
}  # fmt: skip
DEFAULT_NATIONAL_LENGTHS = (6, 12)

# Context words, as lower-case words (the words of a phrase are matched one by one).
# Words that make a bare number a phone number (English, French, German, Spanish,
# Italian, Dutch, Portuguese).
PHONE_WORDS = _words(
    """
    call called calling calls phone phones ph tel tél telephone téléphone telefon
    telefono teléfono telefoon telefone tlf fax fon mobile mobil mob móvil movil cell
    cellphone cellulare cel celular handy whatsapp sms text ring dial hotline numéro
    numero número nummer rufnummer portable joindre appeler appelez appelle llame
    llámame llamar chiama chiamami chiamare bel anrufen rufen telefonnummer handynummer
    mobilnummer faxnummer festnetz festnetznummer phonenumber cellphone
    """
)
# Words that make a following number a reference, not PII.
REFERENCE_WORDS = _words(
    """
    order orders invoice invoices inv ref reference référence ticket tickets tracking
    shipment parcel sendung sendungsnummer bestellung bestellnummer rechnung
    rechnungsnummer commande facture sku part model serial isbn ean gtin upc imei iccid
    vat siren siret po item art artikel product catalogue catalog kundennummer policy
    """
)
# Words that make a dotted quad (and numbers) a version, not an address.
VERSION_WORDS = _words(
    """
    version versions ver build release firmware chapter section oid tag rev revision
    kernel v
    """
)
# Words that make a bare 9-digit number an SSN ("SS#", "social security", "soc. sec.").
SSN_WORDS = _words(
    """
    ssn ssns ss social security sociale soc sozialversicherungsnummer
    """
)
# Words after which a number is some other identifier: neither vetoed nor a phone
# ("account number 4155552671" is not a phone number, but no reason to doubt a card).
IDENTIFIER_WORDS = _words(
    """
    account acct konto kontonummer compte cuenta conto customer client member employee
    patient mrn passport license licence tax identifier
    """
)
# Words that make a Luhn-valid number a card number whatever its issuer prefix.
CARD_WORDS = _words(
    """
    card cards carte cartes karte kreditkarte tarjeta carta visa mastercard amex pan
    """
)
# Words that make "name at host.com" an address.
MAIL_WORDS = _words(
    """
    email emails mail mails courriel correo adresse address write schreib schreiben
    contact kontakt
    """
)
# Words that stand for both a phone number and an address ("reach me at ...").
CONTACT_WORDS = _words(
    """
    reach contact kontakt
    """
)
# The U.S. numbers the SSA declared invalid after they were printed (wallet inserts, ads).
SSN_BLACKLIST = frozenset({"078051120", "219099999", "457555462"})
# Top-level domains accepted after a spelled-out " at " (other forms accept any).
COMMON_TLDS = _words(
    """
    com org net edu gov mil int io co ai app dev info biz me tv us uk ca au nz de fr es
    it nl be ch at se no dk fi pl pt ie ru ua cz sk hu ro gr tr jp cn in br mx ar eu za
    lu li is ee lv lt si hr bg rs il ae sa sg hk kr tw
    """
)
# File extensions that follow "name@2x." in asset names: not addresses.
FILE_EXTENSIONS = _words(
    """
    png jpg jpeg gif svg webp bmp ico tif tiff pdf txt
    """
)

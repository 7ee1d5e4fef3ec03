"""The personal-data guard: free text on chain must not identify a person.

A chain cannot forget (GDPR art. 17; CNIL 2018 guidance on blockchains), so what a clerk
types in a free-text field (a deliberation's object, a notary title, a report's
description or status note, a cancel reason...) is checked before it is recorded.

Rules:
- ``check_free_text(field, value)`` refuses, with the code ``personal_data`` and a
  message naming the field and the kind of data found:
  - an e-mail address;
  - a French phone number (``01 23 45 67 89``, ``06.12.34.56.78``, ``+33 6 12 34 56 78``,
    ``0033612345678``);
  - an IBAN whose ISO 13616 mod-97 check holds (any SEPA country, spaces allowed);
  - a NIR (French social security number, 13 characters, Corsica ``2A``/``2B``
    included) followed by its valid 2-digit key;
  - a postal address with a street number (``12 rue de Paris``, ``3 bis, avenue
    Foch``), unless the caller passes ``street_address_allowed`` (the Open311
    ``address_string`` of a report locates the problem, not a person: it is kept to the
    same precision as the rounded coordinates).
- Checksums (IBAN, NIR) are verified, so figures such as amounts, article numbers
  (``L2121-17``), SIRETs or dates are not mistaken for personal data: the guard refuses
  what it is sure of, and its message says how to phrase the text instead.
- Pure, deterministic, bounded: the regular expressions have no nested quantifiers, so
  their cost is linear in the (already bounded) field size.
"""

from __future__ import annotations

import re

from contracts.rejection import reject

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
_PHONE = re.compile(
    r"(?<![0-9A-Za-z])(?:(?:\+|00)33[ .\-]?(?:\(0\)[ .\-]?)?|0)[1-9](?:[ .\-]?[0-9]{2}){4}"
    r"(?![0-9])")
_IBAN_CANDIDATE = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}[0-9]{2}(?:[ ]?[A-Z0-9]){11,30}")
IBAN_LENGTHS = {
    "AD": 24, "AT": 20, "BE": 16, "BG": 22, "CH": 21, "CY": 28, "CZ": 24, "DE": 22,
    "DK": 18, "EE": 20, "ES": 24, "FI": 18, "FR": 27, "GB": 22, "GI": 23, "GR": 27,
    "HR": 21, "HU": 28, "IE": 22, "IS": 26, "IT": 27, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "MC": 27, "MT": 31, "NL": 18, "NO": 15, "PL": 28, "PT": 25, "RO": 24,
    "SE": 24, "SI": 19, "SK": 24, "SM": 27, "VA": 22,
}
"""IBAN length by country (SEPA members, ISO 13616 registry): the length a candidate
must have before its mod-97 check is even tried."""
_NIR = re.compile(
    r"(?<![0-9A-Za-z])([1-478])[ .]?([0-9]{2})[ .]?([0-9]{2})[ .]?([0-9]{2}|2[AaBb])"
    r"[ .]?([0-9]{3})[ .]?([0-9]{3})[ .]?([0-9]{2})(?![0-9])")
NIR_KEY_MODULUS = 97
_NUMBER = r"(?<![0-9])[0-9]{1,4}(?: ?(?:bis|ter|quater|[A-Da-d]))?,? +"
_STREET_TYPES = (
    r"rue|avenue|av\.|bd|boulevard|impasse|all[ée]e|quai|faubourg|fbg|ruelle|sente"
    r"|lotissement|chauss[ée]e")
"""Words that name a street whatever follows."""
_AMBIGUOUS_TYPES = (
    r"place|cours|chemin|route|square|passage|villa|cit[ée]|mail|voie|sentier|promenade"
    r"|r[ée]sidence|esplanade|parvis|hameau|rond-point|traverse|mont[ée]e|port")
"""Words that are also common nouns ('2 cours de natation'): a street only when a
capitalised name follows ('5 place de la République')."""
_STREET = re.compile(
    _NUMBER + r"(?:(?i:" + _STREET_TYPES + r")(?![\w-])"
    r"|(?i:" + _AMBIGUOUS_TYPES + r") +(?:(?i:de la|de l'|du|des|de|d'|la|le|les) ?)?"
    r"[A-ZÀ-ÖØ-Þ0-9])")


def _iban_found(text: str) -> bool:
    for match in _IBAN_CANDIDATE.finditer(text):
        compact = match.group(0).replace(" ", "")
        length = IBAN_LENGTHS.get(compact[:2])
        if length is None or len(compact) < length:
            continue
        iban = compact[:length]
        rearranged = iban[4:] + iban[:4]
        digits = "".join(str(int(c, 36)) for c in rearranged)
        if int(digits) % 97 == 1:
            return True
    return False


def _nir_found(text: str) -> bool:
    for match in _NIR.finditer(text):
        sex, year, month, department, commune, order, key = match.groups()
        # Corsica: 2A and 2B count as 19 and 18 in the key computation.
        department = {"2A": "19", "2B": "18"}.get(department.upper(), department)
        number = int(sex + year + month + department + commune + order)
        if NIR_KEY_MODULUS - number % NIR_KEY_MODULUS == int(key):
            return True
    return False


def check_free_text(field: str, value: str, *, street_address_allowed: bool = False) -> None:
    """Raise ``Rejection("personal_data")`` naming ``field`` if ``value`` holds an e-mail
    address, a French phone number, an IBAN, a NIR with its key or (unless allowed) a
    postal address with a street number."""
    found: str | None = None
    advice = "remove it: personal data never goes on chain, it stays in the case file"
    # Checksummed kinds first: an IBAN or a NIR also holds digit groups shaped like a
    # phone number, and the message should name what it really is.
    if _EMAIL.search(value):
        found = "an e-mail address"
    elif _iban_found(value):
        found = "an IBAN (bank account number)"
    elif _nir_found(value):
        found = "a social security number (NIR)"
    elif _PHONE.search(value):
        found = "a phone number"
    elif not street_address_allowed and _STREET.search(value):
        found = "a postal address with a street number"
        advice = ("remove the street number, or name the place without it "
                  "(e.g. 'rue de Paris, near the school')")
    if found is not None:
        reject("personal_data",
               f"the field {field} contains {found}; {advice}")

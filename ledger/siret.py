"""SIRET numbers: 14 digits whose Luhn check holds, with La Poste's documented exception.

Rules:
- A SIRET is the 9-digit SIREN of the organisation followed by a 5-digit establishment
  number (NIC); its 14 digits pass the Luhn check (INSEE).
- La Poste (SIREN ``356000000``) has more establishments than the Luhn key leaves room
  for: INSEE documents that its SIRETs are valid when the sum of their 14 digits is a
  multiple of 5 (its head office, ``35600000000048``, also passes Luhn).
- Pure functions, no I/O: genesis, governance and every contract payload call
  ``siret_problem`` so the same rule holds everywhere.
"""

from __future__ import annotations

import re

SIRET_RE = re.compile(r"^[0-9]{14}$")
LA_POSTE_SIREN = "356000000"
LA_POSTE_DIGIT_SUM_MODULUS = 5


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check over a string of ASCII digits."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def siret_problem(siret: str) -> str | None:
    """``None`` if ``siret`` is a valid SIRET, else what is wrong with it (for a person)."""
    if not SIRET_RE.fullmatch(siret):
        return "must be exactly 14 digits"
    if siret.startswith(LA_POSTE_SIREN):
        if luhn_valid(siret) or sum(ord(c) - 48 for c in siret) % LA_POSTE_DIGIT_SUM_MODULUS == 0:
            return None
        return ("is not a valid La Poste SIRET (the sum of its digits must be a multiple "
                "of 5); check it on annuaire-entreprises.data.gouv.fr")
    if not luhn_valid(siret):
        return ("fails the SIRET check digit (Luhn); check for a typing error "
                "on annuaire-entreprises.data.gouv.fr")
    return None


def complete_siret(first_13_digits: str) -> str:
    """The valid SIRET that starts with ``first_13_digits`` (the Luhn check digit
    appended): for generated test and development networks."""
    assert len(first_13_digits) == 13 and first_13_digits.isdigit(), first_13_digits
    for digit in "0123456789":
        if luhn_valid(first_13_digits + digit):
            return first_13_digits + digit
    raise AssertionError("one of ten check digits always fits")

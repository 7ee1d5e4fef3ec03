"""The personal-data guard (contracts.personal_data), SIRET checks (ledger.siret) and
beneficiary tags (contracts.social_aid.tag_problem), on realistic French samples:
what must be refused, and what must pass (the guard must not be trigger-happy)."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from contracts.engine import REGISTRY
from contracts.personal_data import check_free_text
from contracts.registry import Rejection
from contracts.social_aid import tag_problem
from ledger.siret import complete_siret, siret_problem
from tests.vectors.contracts.scenario import Chain, anchor, report


def _nir(first_13: str) -> str:
    number = int(first_13.upper().replace("2A", "19").replace("2B", "18"))
    return f"{first_13}{97 - number % 97:02d}"


REFUSED = [
    ("e-mail", "Contact : jeanne.dupont@orange.fr pour le dossier"),
    ("e-mail", "candidatures à rh+recrutement@ville-montreuil.fr"),
    ("phone", "Rappeler Mme Martin au 06 12 34 56 78"),
    ("phone", "tél. 01.48.70.48.00"),
    ("phone", "joignable au +33 6 12 34 56 78"),
    ("phone", "0033612345678"),
    ("phone", "0148704800"),
    ("IBAN", "virement sur FR76 3000 6000 0112 3456 7890 189"),
    ("IBAN", "RIB FR7630006000011234567890189"),
    ("IBAN", "compte DE89 3704 0044 0532 0130 00"),
    ("NIR", f"assuré n° {_nir('1850578006084')}"),
    ("NIR", "NIR 2 69 02 99 341 732 " + _nir("2690299341732")[-2:]),
    ("NIR", f"né en Corse, {_nir('185052A006084')}"),
    ("address", "Lampadaire éteint devant le 12 rue de Paris"),
    ("address", "Mme Dupont, 3 bis, avenue Foch"),
    ("address", "déménagée au 47 boulevard de la Boissière"),
    ("address", "5 place de la République"),
    ("address", "8 impasse des Lilas"),
]

ACCEPTED = [
    "Vu l'article L2121-17 du CGCT, le conseil municipal délibère valablement",
    "Budget primitif 2026 : 1 250 000,00 € en section de fonctionnement",
    "Subvention de 15 000 € au CCAS (SIRET 21930048000015)",
    "Séance du 12/03/2026 à 19h00, délibération n° 2026-017 du 01.02.2026",
    "Marché public n° 2026-04-0012, lot 3 : réfection de la rue de Paris",
    "Organisation de 2 cours de natation pour les écoles",
    "Tarifs de la cantine : 3,50 € le repas, 10 place(s) réservée(s)",
    "Réfection de la voirie, rue Hoche, près de l'école",
    "Convention avec l'association, 4 rues concernées",
    "Avenant n° 2 au contrat de délégation de service public",
    "Numéro vert 0 800 123 456",  # not a personal line, and not a phone number shape
    "NIR 1 85 05 78 006 084 00",  # wrong key: a random figure, not a NIR
    "FR7630006000011234567890180",  # wrong IBAN checksum
    "Mise à jour du PLU, zone UA 12",
]


@pytest.mark.parametrize(("kind", "text"), REFUSED, ids=[f"{k}:{t[:30]}" for k, t in REFUSED])
def test_personal_data_is_refused_with_a_clear_code(kind: str, text: str) -> None:
    with pytest.raises(Rejection) as caught:
        check_free_text("DELIB_OBJET", text)
    assert caught.value.code == "personal_data"
    assert caught.value.message.startswith("the field DELIB_OBJET contains ")
    words = {"e-mail": "e-mail", "phone": "phone", "IBAN": "IBAN", "NIR": "NIR",
             "address": "street number"}
    assert words[kind] in caught.value.message


@pytest.mark.parametrize("text", ACCEPTED)
def test_ordinary_council_and_report_text_passes(text: str) -> None:
    check_free_text("DELIB_OBJET", text)


def test_an_address_field_may_hold_a_street_number_but_nothing_else() -> None:
    check_free_text("address_string", "12 rue de Paris", street_address_allowed=True)
    with pytest.raises(Rejection, match="phone number"):
        check_free_text("address_string", "12 rue de Paris, 06 12 34 56 78",
                        street_address_allowed=True)


def test_every_free_text_field_of_every_contract_is_guarded() -> None:
    """A field is free text when it has no pattern and no closed set of values; each
    one refuses an e-mail address through the real engine's schema check."""
    free = [(c.name, a.name, f) for c in REGISTRY.contracts for a in c.actions
            for f in a.fields if f.kind == "str" and f.pattern is None and not f.choices]
    names = {f"{c}.{a}.{f.name}" for c, a, f in free}
    assert {"deliberations.record.DELIB_OBJET", "notary.anchor.title",
            "reports.submit.description", "reports.acknowledge.status_notes",
            "social_aid.cancel.reason", "identity.revoke.reason",
            "deliberations.withdraw.reason"} <= names
    for _, _, f in free:
        with pytest.raises(Rejection) as caught:
            f.check("écrire à jeanne.dupont@orange.fr")
        assert caught.value.code == "personal_data", f.name


def test_a_report_and_a_title_go_through_the_guard_in_the_engine() -> None:
    chain = Chain()
    refused = chain.do("montreuil.clerk", "reports", "submit",
                       report(description="Signalé par Jean Martin, 06 12 34 56 78"))
    assert (refused.code, refused.message) == (
        "personal_data", "the field description contains a phone number; remove it: "
        "personal data never goes on chain, it stays in the case file")
    assert chain.do("montreuil.clerk", "notary", "anchor",
                    anchor(title="Arrêté n° 2026-042 : stationnement rue de Paris")).ok


def test_siret_luhn_and_the_la_poste_exception() -> None:
    assert siret_problem("21930048000015") is None  # Montreuil's town hall
    assert siret_problem("21930048000016") is not None
    assert "14 digits" in str(siret_problem("2193004800001"))
    # La Poste (SIREN 356000000): the sum of the digits is a multiple of 5.
    assert siret_problem("35600000000048") is None  # head office, also Luhn-valid
    assert siret_problem("35600000049837") is None  # sum 45, Luhn-invalid
    assert "La Poste" in str(siret_problem("35600000049838"))
    assert siret_problem(complete_siret("2193000100001")) is None


def test_tags_must_look_like_hmac_outputs() -> None:
    real = hmac.new(b"k" * 32, b"CASE-1", hashlib.sha256).hexdigest()
    assert tag_problem(real) is None
    assert "text spelled in hexadecimal" in str(
        tag_problem(b"Jeanne Dupont".hex().ljust(64, "0")))
    assert "text spelled in hexadecimal" in str(tag_problem(b"CCAS-2026-00417 ".hex() * 2))
    assert "too regular" in str(tag_problem("00" * 32))
    assert "too regular" in str(tag_problem("ab" * 32))
    # A thousand real HMAC tags: none is refused (no false positive).
    assert all(tag_problem(hmac.new(b"k" * 32, b"%d" % n, hashlib.sha256).hexdigest())
               is None for n in range(1000))

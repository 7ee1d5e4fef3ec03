"""Governance: qualified majority of municipalities, validator-set changes, parameters."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from contracts.engine import validator_set
from contracts.governance import needed_approvals
from contracts.identity import validator_addresses
from contracts.queries import (
    active_municipalities,
    member_roles,
    municipality,
    parameter,
    proposal,
)
from ledger.genesis import APPROVAL_DENOMINATOR_MAX, genesis_from_json
from ledger.records import Receipt
from tests.vectors.contracts.scenario import Chain, key, make_genesis, pub, siret

NEW_SIRET = "21930063900016"


def add_payload(town: str = "montreuil", **extra: Any) -> dict[str, Any]:
    payload = {"siret": siret(town), "kind": "add_municipality",
               "municipality_name": "Rosny-sous-Bois", "municipality_siret": NEW_SIRET,
               "validator_key": pub("rosny.validator"), "admin_key": pub("rosny.admin")}
    payload.update(extra)
    return payload


def propose(chain: Chain, payload: dict[str, Any]) -> tuple[str, Receipt]:
    tx = chain.tx("montreuil.admin", "governance", "propose", payload)
    return tx.tx_id.hex(), chain.run(tx)


def approve(chain: Chain, town: str, pid: str, who: str = "admin") -> Receipt:
    return chain.do(f"{town}.{who}", "governance", "approve",
                    {"siret": siret(town), "proposal_id": pid})


def test_adding_a_municipality_needs_two_thirds_and_changes_the_validator_set() -> None:
    chain = Chain()
    pid, receipt = propose(chain, add_payload())
    assert receipt.code == "ok"
    assert receipt.data == {"proposal_id": pid, "status": "open", "approvals": 1,
                            "needed": 3, "municipalities": 4}
    assert approve(chain, "bagnolet", pid).data["status"] == "open"
    assert chain.results[-1].validator_set is None
    passed = approve(chain, "pantin", pid)
    assert passed.code == "ok" and passed.data["status"] == "passed"
    new_set = chain.results[-1].validator_set
    assert new_set is not None and key("rosny.validator").public_key in new_set.keys
    assert new_set == validator_set(chain.state) and new_set.n == 5
    assert NEW_SIRET in active_municipalities(chain.state)
    assert member_roles(chain.state, pub("rosny.admin")) == ("admin",)
    late = approve(chain, "vincennes", pid)
    assert late.code == "proposal_closed"


def test_one_vote_per_municipality_by_its_admin() -> None:
    chain = Chain()
    pid, _ = propose(chain, add_payload())
    again = approve(chain, "montreuil", pid)
    assert again.code == "already_approved"
    assert again.message == ("municipality 21930048000015 already approved this proposal; "
                             "each municipality votes once")
    assert approve(chain, "bagnolet", pid, who="clerk").code == "not_permitted"
    record = proposal(chain.state, pid)
    assert record is not None and record["approvals"] == [siret("montreuil")]


def test_removing_a_municipality_revokes_its_keys_and_its_validator() -> None:
    chain = Chain()
    pid, _ = propose(chain, {"siret": siret("montreuil"), "kind": "remove_municipality",
                             "municipality_siret": siret("vincennes")})
    approve(chain, "bagnolet", pid)
    assert approve(chain, "pantin", pid).data["status"] == "passed"
    new_set = chain.results[-1].validator_set
    assert new_set is not None and key("vincennes.validator").public_key not in new_set.keys
    assert member_roles(chain.state, pub("vincennes.admin")) == ()
    receipt = chain.do("vincennes.clerk", "notary", "anchor",
                       {"siret": siret("vincennes"), "sha256": "aa" * 32,
                        "document_type": "arrete", "reference": "R"})
    assert receipt.code == "signer_revoked"


def test_parameter_change_and_bounds() -> None:
    chain = Chain()
    _, bad = propose(chain, {"siret": siret("montreuil"), "kind": "set_parameter",
                             "parameter": "approval_numerator", "value": 4})
    assert bad.code == "invalid_parameter"
    assert "the approval fraction would become 4/3" in bad.message
    _, unknown = propose(chain, {"siret": siret("montreuil"), "kind": "set_parameter",
                                 "parameter": "execution_lag", "value": 2})
    assert unknown.code == "invalid_parameter"
    assert "cannot be changed by governance" in unknown.message
    pid, _ = propose(chain, {"siret": siret("montreuil"), "kind": "set_parameter",
                             "parameter": "block_txs_max", "value": 500})
    approve(chain, "bagnolet", pid)
    approve(chain, "pantin", pid)
    assert parameter(chain.state, "block_txs_max") == 500


def test_a_proposal_needs_its_kinds_fields_and_only_them() -> None:
    chain = Chain()
    _, missing = propose(chain, {"siret": siret("montreuil"), "kind": "add_municipality"})
    assert missing.code == "invalid_payload"
    assert missing.message == ("the field admin_key is missing; a add_municipality proposal "
                               "needs it")
    _, extra = propose(chain, {"siret": siret("montreuil"), "kind": "remove_municipality",
                               "municipality_siret": siret("pantin"), "value": 3})
    assert extra.code == "invalid_payload"
    assert "value has no meaning in a remove_municipality proposal" in extra.message


def test_adding_an_existing_municipality_is_refused() -> None:
    chain = Chain()
    _, receipt = propose(chain, add_payload(municipality_siret=siret("pantin")))
    assert receipt.code == "municipality_exists"
    assert receipt.message == "municipality 21930055500014 (Pantin) is already in the network"


def test_a_proposal_expires_after_thirty_days() -> None:
    chain = Chain()
    pid, _ = propose(chain, add_payload())
    chain.time_ms += 31 * 24 * 3600 * 1000
    receipt = approve(chain, "bagnolet", pid)
    assert receipt.code == "proposal_expired"


def test_unknown_proposal() -> None:
    chain = Chain()
    receipt = approve(chain, "bagnolet", "ab" * 32)
    assert receipt.code == "unknown_proposal"


def test_a_single_municipality_network_passes_its_own_proposal() -> None:
    chain = Chain(genesis=make_genesis(["montreuil"]))
    _, receipt = propose(chain, add_payload())
    assert receipt.data["status"] == "passed" and receipt.data["needed"] == 1
    assert chain.results[-1].validator_set is not None


def test_governance_reaches_every_approval_fraction_a_genesis_may_hold() -> None:
    """A genesis may hold a fraction with a denominator up to ``APPROVAL_DENOMINATOR_MAX``;
    governance used to stop at 256, so a network started at 667/1000 could not even set
    its own fraction again. One bound (ADR 0018) serves both; one past it is refused."""
    genesis = dataclasses.replace(make_genesis(), approval_numerator=667,
                                  approval_denominator=APPROVAL_DENOMINATOR_MAX)
    assert genesis_from_json(genesis.to_json()) == genesis  # the genesis file is valid
    chain = Chain(genesis)
    assert needed_approvals(chain.state) == (3, 4)
    pid, receipt = propose(chain, {"siret": siret("montreuil"), "kind": "set_parameter",
                                   "parameter": "approval_numerator", "value": 750})
    assert receipt.code == "ok", receipt.message
    approve(chain, "bagnolet", pid)
    approve(chain, "pantin", pid)
    assert parameter(chain.state, "approval_numerator") == 750
    _, too_large = propose(chain, {"siret": siret("montreuil"), "kind": "set_parameter",
                                   "parameter": "approval_denominator",
                                   "value": APPROVAL_DENOMINATOR_MAX + 1})
    assert too_large.code == "invalid_parameter"
    assert f"between 1 and {APPROVAL_DENOMINATOR_MAX}" in too_large.message


# ---------------------------------------------------------------- on-chain addresses
def test_an_added_validators_address_is_on_chain_for_the_others_to_dial() -> None:
    chain = Chain()
    pid, _ = propose(chain, add_payload(validator_address="rosny.example.fr:7001"))
    approve(chain, "bagnolet", pid)
    assert approve(chain, "pantin", pid).data["status"] == "passed"
    record = municipality(chain.state, NEW_SIRET)
    assert record is not None and record["validator_address"] == "rosny.example.fr:7001"
    assert validator_addresses(chain.state) == {pub("rosny.validator"): "rosny.example.fr:7001"}


def test_a_proposal_without_an_address_is_stored_as_before_addresses_existed() -> None:
    chain = Chain()
    pid, _ = propose(chain, add_payload())
    record = proposal(chain.state, pid)
    assert record is not None and "validator_address" not in record
    approve(chain, "bagnolet", pid)
    approve(chain, "pantin", pid)
    added = municipality(chain.state, NEW_SIRET)
    assert added is not None and set(added) == {
        "name", "siret", "validator_key", "active", "added_height", "removed_height"}
    assert validator_addresses(chain.state) == {}


@pytest.mark.parametrize(("address", "why"), [
    ("rosny.example.fr", "must be host:port"),
    ("rosny.example.fr:0", "names its port (1..65535), not 0"),
    ("192.0.2.1:70000", "port 70000 is out of range"),
    ("hôtel-de-ville.fr:7001", "must be host:port"),
    ("a" * 254 + ":7001", "must be host:port"),
    ("a" * 300 + ":7001", "1 to 259 bytes"),
    ("host:7001; rm -rf /", "must be host:port"),
])
def test_a_bad_validator_address_is_refused_with_the_reason(address: str, why: str) -> None:
    chain = Chain()
    _, receipt = propose(chain, add_payload(validator_address=address))
    assert receipt.code == "invalid_payload"
    assert "validator_address" in receipt.message and why in receipt.message


def test_an_address_has_no_meaning_in_a_removal() -> None:
    chain = Chain()
    _, receipt = propose(chain, {"siret": siret("montreuil"), "kind": "remove_municipality",
                                 "municipality_siret": siret("pantin"),
                                 "validator_address": "192.0.2.1:7001"})
    assert receipt.code == "invalid_payload"
    assert "validator_address has no meaning in a remove_municipality proposal" in receipt.message


# ---------------------------------------------------------------- validator-key rotation
def rotate_payload(town: str = "vincennes", new: str = "vincennes.validator2",
                   **extra: Any) -> dict[str, Any]:
    return {"siret": siret("montreuil"), "kind": "replace_validator_key",
            "municipality_siret": siret(town), "validator_key": pub(new), **extra}


def pass_proposal(chain: Chain, payload: dict[str, Any]) -> Receipt:
    pid, receipt = propose(chain, payload)
    assert receipt.code == "ok", receipt.message
    approve(chain, "bagnolet", pid)
    return approve(chain, "pantin", pid)


def test_a_validator_key_is_replaced_by_governance_and_the_old_one_retired() -> None:
    chain = Chain()
    old, new = key("vincennes.validator").public_key, key("vincennes.validator2").public_key
    passed = pass_proposal(chain, rotate_payload(validator_address="192.0.2.7:7001"))
    assert passed.code == "ok" and passed.data["status"] == "passed"
    new_set = chain.results[-1].validator_set
    assert new_set is not None and new in new_set.keys and old not in new_set.keys
    assert new_set.n == 4 and new_set == validator_set(chain.state)
    record = municipality(chain.state, siret("vincennes"))
    assert record is not None and record["validator_key"] == new.hex()
    assert record["active"] and validator_addresses(chain.state) == {new.hex(): "192.0.2.7:7001"}
    # the municipality's members are untouched: only its validator changed
    assert member_roles(chain.state, pub("vincennes.admin")) == ("admin",)


def test_a_retired_validator_key_never_comes_back() -> None:
    chain = Chain()
    pass_proposal(chain, rotate_payload())
    _, back = propose(chain, rotate_payload(new="vincennes.validator"))
    assert back.code == "key_already_enrolled"
    assert "was retired at height" in back.message and "generate a new key" in back.message
    _, readded = propose(chain, add_payload(validator_key=pub("vincennes.validator")))
    assert readded.code == "key_already_enrolled"
    enrol = chain.do("montreuil.admin", "identity", "enroll",
                     {"siret": siret("montreuil"), "key": pub("vincennes.validator"),
                      "roles": ["clerk"]})
    assert enrol.code == "key_already_enrolled"


def test_a_rotation_keeps_the_address_unless_it_gives_one() -> None:
    chain = Chain()
    pass_proposal(chain, rotate_payload(validator_address="192.0.2.7:7001"))
    pass_proposal(chain, rotate_payload(new="vincennes.validator3"))
    assert validator_addresses(chain.state) == {pub("vincennes.validator3"): "192.0.2.7:7001"}


@pytest.mark.parametrize(("payload", "code"), [
    (rotate_payload(new="bagnolet.validator"), "key_already_enrolled"),
    (rotate_payload(new="bagnolet.clerk"), "key_already_enrolled"),
    (rotate_payload(new="vincennes.validator"), "key_already_enrolled"),
    ({**rotate_payload(), "municipality_siret": NEW_SIRET}, "unknown_municipality"),
    ({**rotate_payload(), "admin_key": pub("x.admin")}, "invalid_payload"),
])
def test_a_rotation_that_cannot_apply_is_refused(payload: dict[str, Any], code: str) -> None:
    chain = Chain()
    _, receipt = propose(chain, payload)
    assert receipt.code == code, receipt.message

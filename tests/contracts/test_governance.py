"""Governance: qualified majority of municipalities, validator-set changes, parameters."""

from __future__ import annotations

import dataclasses
from typing import Any

from contracts.engine import validator_set
from contracts.governance import needed_approvals
from contracts.queries import active_municipalities, member_roles, parameter, proposal
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

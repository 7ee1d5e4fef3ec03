"""Run every contract test vector in tests/vectors/contracts/*.json.

Each case rebuilds its pre-state from the genesis and the setup blocks it lists, checks
the pre-state root, executes the transaction in the given block environment, and
compares the receipt (code, message, data), the new validator set (if any) and the
post-state root.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from contracts.engine import BlockEnv, DictState, RecentCommits, execute_block, genesis_changes
from ledger.genesis import genesis_from_json
from ledger.records import Transaction
from tests.vectors.contracts.generate import vectors
from tests.vectors.contracts.scenario import state_root

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "contracts"
FILES = sorted(VECTORS.glob("*.json"))
CASES = [
    (path.stem, case) for path in FILES
    for case in json.loads(path.read_text(encoding="utf-8"))["cases"]
]


def _env(obj: dict[str, Any]) -> BlockEnv:
    return BlockEnv(obj["chain_id"], obj["height"], obj["time_ms"], bytes.fromhex(obj["proposer"]))


def test_there_is_a_vector_file_per_contract() -> None:
    assert {p.stem for p in FILES} == {"engine", "identity", "governance", "deliberations",
                                       "social_aid", "reports", "notary", "metering"}


def test_validator_set_changes_are_covered() -> None:
    changes = [case for _, case in CASES if case["new_validator_set"] is not None]
    assert {case["name"] for case in changes} == {"approve_passes", "remove_passes"}


def test_every_file_has_accepted_and_rejected_cases() -> None:
    for path in FILES:
        codes = [c["receipt"]["code"] for c in json.loads(path.read_text())["cases"]]
        assert "ok" in codes and any(code != "ok" for code in codes), path.name


@pytest.mark.parametrize(("contract", "case"), CASES,
                         ids=[f"{c}/{case['name']}" for c, case in CASES])
def test_vector(contract: str, case: dict[str, Any]) -> None:
    doc = json.loads((VECTORS / f"{contract}.json").read_text(encoding="utf-8"))
    state = DictState()
    state.apply(genesis_changes(genesis_from_json(doc["genesis"])))
    recent = RecentCommits()  # the replay guard: the setup blocks' ids are committed
    for block in case["setup_blocks"]:
        txs = [Transaction.decode(bytes.fromhex(h)) for h in block["txs"]]
        env = _env(block["env"])
        state.apply(execute_block(state, env, txs, recent).changes)
        recent.record(env.time_ms, txs)
    assert state_root(state.items()).hex() == case["pre_state_root"]
    tx = Transaction.decode(bytes.fromhex(case["tx"]["hex"]))
    assert (tx.contract, tx.action, tx.payload) == (
        case["tx"]["contract"], case["tx"]["action"], case["tx"]["payload"])
    assert tx.signature_valid()
    result = execute_block(state, _env(case["env"]), [tx], recent)
    (receipt,) = result.receipts
    assert receipt.tx_id == tx.tx_id
    assert {"code": receipt.code, "message": receipt.message, "data": receipt.data} == (
        case["receipt"])
    changed = result.validator_set
    assert (None if changed is None else [k.hex() for k in changed.keys]) == (
        case["new_validator_set"])
    state.apply(result.changes)
    assert state_root(state.items()).hex() == case["post_state_root"]


def test_the_generator_reproduces_the_committed_files() -> None:
    """A behaviour change must come with regenerated vectors (and a reviewed diff)."""
    for name, doc in vectors().items():
        committed = json.loads((VECTORS / name).read_text(encoding="utf-8"))
        assert json.loads(json.dumps(doc)) == committed, (
            f"{name} is stale: run python -m tests.vectors.contracts.generate")

"""Record receipts: one verifies on its own from the genesis file; any change to any part
makes it fail with a message naming that part."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from cli.receipt import receipt_app
from ledger.encoding import decode, encode
from testkit.chainbuilder import BuilderSource, ChainBuilder
from testkit.populate import build_chain
from verify.receipt import (
    ReceiptError,
    describe,
    gather_receipt,
    verify_receipt,
    write_receipt_file,
)

BLOCKS = 120
SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "receipt.schema.json"


@pytest.fixture(scope="module")
def chain() -> ChainBuilder:
    return build_chain(BLOCKS)


def _deliberation(chain: ChainBuilder, after: int) -> bytes:
    for blk in chain.blocks[after:]:
        for tx in blk.block.transactions:
            if tx.contract == "deliberations" and tx.action == "record":
                return tx.tx_id
    raise AssertionError("the chain holds a deliberation")


@pytest.fixture(scope="module")
def receipt(chain: ChainBuilder) -> dict[str, Any]:
    # after both validator-set changes: the receipt must carry them
    doc = gather_receipt(chain.net.genesis, BuilderSource(chain),
                         _deliberation(chain, chain.validator_changes[1] + 10))
    again: dict[str, Any] = json.loads(json.dumps(doc))  # exactly what a file would hold
    return again


def test_a_receipt_verifies_and_says_what_it_proves(
    chain: ChainBuilder, receipt: dict[str, Any]
) -> None:
    facts = verify_receipt(chain.net.genesis, receipt)
    assert facts.validator_changes == 2
    assert len(receipt["validator_changes"]) == 2
    text = describe(facts, chain.net.genesis)
    p = facts.transaction.payload
    assert text.startswith(f"Deliberation {p['DELIB_ID']} of {p['COLL_NOM']}, adopted 12 "
                           "votes to 2, was recorded at height ")
    assert f"height {facts.height:,} on " in text
    assert text.endswith("certified by 3 of 4 municipalities.")


def test_a_receipt_before_any_change_needs_no_validator_chain(chain: ChainBuilder) -> None:
    tx_id = chain.blocks[0].block.transactions[0].tx_id
    doc = gather_receipt(chain.net.genesis, BuilderSource(chain), tx_id)
    assert doc["validator_changes"] == []
    facts = verify_receipt(chain.net.genesis, doc)
    assert "Record \u201cidentity enroll\u201d of Montreuil" in describe(facts,
                                                                          chain.net.genesis)


def test_the_receipt_matches_its_json_schema(receipt: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text())
    _check_schema(receipt, schema, schema)


def _check_schema(value: Any, schema: dict[str, Any], root: dict[str, Any]) -> None:
    """The subset of JSON Schema the receipt schema uses (no extra dependency)."""
    import re

    if "$ref" in schema:
        name = schema["$ref"].split("/")[-1]
        _check_schema(value, root["$defs"][name], root)
        return
    if "const" in schema:
        assert value == schema["const"]
    if "oneOf" in schema:
        passed = 0
        for option in schema["oneOf"]:
            try:
                _check_schema(value, option, root)
                passed += 1
            except AssertionError:
                pass
        assert passed == 1
    kind = schema.get("type")
    if kind == "object":
        assert isinstance(value, dict)
        for name in schema.get("required", []):
            assert name in value, name
        props = schema.get("properties", {})
        if schema.get("additionalProperties") is False:
            assert set(value) <= set(props), set(value) - set(props)
        for name, sub in props.items():
            if name in value:
                _check_schema(value[name], sub, root)
    elif kind == "array":
        assert isinstance(value, list)
        assert len(value) <= schema.get("maxItems", len(value))
        assert len(value) >= schema.get("minItems", 0)
        for item in value:
            _check_schema(item, schema.get("items", {}), root)
    elif kind == "string":
        assert isinstance(value, str)
        if "pattern" in schema:
            assert re.fullmatch(schema["pattern"], value), (schema["pattern"], value[:80])
    elif kind == "integer":
        assert isinstance(value, int) and value >= schema.get("minimum", value)
    elif kind == "null":
        assert value is None


def _flip_hex(text: str, at: int = 10) -> str:
    digit = "0" if text[at] != "0" else "1"
    return text[:at] + digit + text[at + 1:]


def _resign_payload(doc: dict[str, Any]) -> None:
    """Change the record's payload but keep its bytes canonical (a forger's edit)."""
    tx = decode(bytes.fromhex(doc["record"]["transaction"]))
    tx[3] = {**tx[3], "VOTE_POUR": 14}
    doc["record"]["transaction"] = encode(tx).hex()


Edit = Callable[[dict[str, Any]], None]
EDITS: list[tuple[str, Edit, str]] = [
    ("record payload", _resign_payload, "record.transaction"),
    ("record byte", lambda d: d["record"].update(
        transaction=_flip_hex(d["record"]["transaction"], 40)), "record.transaction"),
    ("receipt", lambda d: d["record"].update(
        receipt=_flip_hex(d["record"]["receipt"], 8)), "record.receipt"),
    ("tx proof path", lambda d: d["record"]["tx_proof"]["path"].__setitem__(
        0, _flip_hex(d["record"]["tx_proof"]["path"][0])), "record.tx_proof"),
    ("tx proof index", lambda d: d["record"]["tx_proof"].update(index=1, size=2),
     "record.tx_proof"),
    ("receipt proof", lambda d: d["record"]["receipt_proof"].update(
        size=d["record"]["receipt_proof"]["size"] + 1), "record.receipt_proof"),
    ("header", lambda d: d["record"]["block"].update(
        header=_flip_hex(d["record"]["block"]["header"], 60)), "record.block"),
    ("results header", lambda d: d["record"]["results_block"].update(
        header=_flip_hex(d["record"]["results_block"]["header"], 60)),
     "record.results_block"),
    ("certificate signature", lambda d: d["record"]["block"].update(
        certificate=_flip_hex(d["record"]["block"]["certificate"],
                              len(d["record"]["block"]["certificate"]) - 6)),
     "record.block.certificate"),
    ("height", lambda d: d["record"].update(height=d["record"]["height"] + 1),
     "record.block.header"),
    ("validator chain dropped", lambda d: d["validator_changes"].pop(), "record.block"),
    ("validator chain keys", lambda d: d["validator_changes"][0].update(
        validators=sorted(d["validator_changes"][1]["validators"])),
     "validator_changes[0].after.value"),
    ("validator chain proof", lambda d: d["validator_changes"][1]["after"].update(
        proof=_flip_hex(d["validator_changes"][1]["after"]["proof"], 30)),
     "validator_changes[1].after.proof"),
    ("validator chain certificate", lambda d: d["validator_changes"][0]["before"].update(
        certificate=_flip_hex(d["validator_changes"][0]["before"]["certificate"],
                              len(d["validator_changes"][0]["before"]["certificate"]) - 6)),
     "validator_changes[0].before.certificate"),
    ("decided_at", lambda d: d["validator_changes"][1].update(
        decided_at=d["validator_changes"][1]["decided_at"] + 1),
     "validator_changes[1].before"),
    ("readable copy", lambda d: d["readable"]["transaction"]["payload"].update(
        VOTE_POUR=15), "readable.transaction"),
    ("genesis hash", lambda d: d.update(genesis_hash="00" * 32), "genesis_hash"),
]


@pytest.mark.parametrize(("name", "edit", "part"), EDITS, ids=[e[0] for e in EDITS])
def test_any_change_fails_naming_the_part(
    chain: ChainBuilder, receipt: dict[str, Any], name: str, edit: Edit, part: str
) -> None:
    doc = copy.deepcopy(receipt)
    edit(doc)
    with pytest.raises(ReceiptError) as caught:
        verify_receipt(chain.net.genesis, doc)
    assert str(caught.value).startswith(part), str(caught.value)


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(receipt_app, name="receipt")
    return app


def test_the_verify_command_prints_what_it_proves(
    chain: ChainBuilder, receipt: dict[str, Any], tmp_path: Path
) -> None:
    genesis = tmp_path / "genesis.json"
    chain.net.genesis.save(genesis)
    good = tmp_path / "receipt.json"
    write_receipt_file(receipt, good)
    result = CliRunner().invoke(_cli(), ["receipt", "verify", str(good), "--genesis",
                                         str(genesis)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("VERIFIED: Deliberation ")
    assert "certified by 3 of 4 municipalities" in result.stdout

    bad = copy.deepcopy(receipt)
    _resign_payload(bad)
    write_receipt_file(bad, good)
    result = CliRunner().invoke(_cli(), ["receipt", "verify", str(good), "--genesis",
                                         str(genesis)])
    assert result.exit_code == 1
    assert "NOT VERIFIED: record.transaction" in result.stderr

    result = CliRunner().invoke(_cli(), ["receipt", "verify", str(tmp_path / "nope.json"),
                                         "--genesis", str(genesis)])
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


@pytest.mark.parametrize(("contract", "expected"), [
    ("notary", "Document ARR-2026-"),
    ("social_aid", "Social-aid payment of 120."),
    ("reports", "Citizen report \u201cstreetlight\u201d of "),
])
def test_each_kind_of_record_is_described_in_words(
    chain: ChainBuilder, contract: str, expected: str
) -> None:
    lag = chain.net.genesis.consensus.execution_lag
    tx = next(tx for blk in chain.blocks[:-lag] for tx in blk.block.transactions
              if tx.contract == contract and tx.action in ("anchor", "disburse", "submit"))
    facts = verify_receipt(chain.net.genesis,
                           gather_receipt(chain.net.genesis, BuilderSource(chain), tx.tx_id))
    assert describe(facts, chain.net.genesis).startswith(expected)


def test_a_change_in_force_after_the_results_header_is_refused(
    chain: ChainBuilder, receipt: dict[str, Any]
) -> None:
    """A receipt lists only the changes in force at or before h + D (docs/receipt.md):
    one more, however well proven, is refused and named."""
    tx_id = chain.blocks[0].block.transactions[0].tx_id
    early = gather_receipt(chain.net.genesis, BuilderSource(chain), tx_id)
    early["validator_changes"] = receipt["validator_changes"][:1]
    with pytest.raises(ReceiptError) as refused:
        verify_receipt(chain.net.genesis, early)
    assert refused.value.part == "validator_changes[0]"
    assert "comes into force at height" in refused.value.reason


def test_the_node_path_builds_the_same_receipt_from_the_decided_heights(
    chain: ChainBuilder, receipt: dict[str, Any]
) -> None:
    """``decided`` (what a node's validator history gives) replaces the header scan."""
    tx_id = bytes.fromhex(receipt["readable"]["transaction"]["tx_id"])
    served = gather_receipt(chain.net.genesis, BuilderSource(chain), tx_id,
                            decided=chain.validator_changes)
    assert json.loads(json.dumps(served)) == receipt

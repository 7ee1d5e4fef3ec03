"""The pure audit core (``verify.chain.ChainAudit``) over a chain built with the library.

Each test alters one thing in the decoded blocks and checks that the audit names the
height, the transaction and the part that is wrong, and keeps going to the end."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from ledger.records import (
    Block,
    CommitCertificate,
    CommitSignature,
    CommittedBlock,
    Receipt,
    Transaction,
)
from ledger.validator_history import effective_height
from testkit.chainbuilder import (
    REMOVED_TOWN,
    SIGNER_KEYS,
    ChainBuilder,
    anchor_payload,
    key_for,
    signed_tx,
    stored_blocks,
)
from testkit.populate import build_chain
from verify.audit import run_audit
from verify.chain import ChainAudit
from verify.findings import Finding, StoredBlock
from verify.replay import EngineReplayer
from verify.signatures import SignaturePool

BLOCKS = 150


@pytest.fixture(scope="module")
def chain() -> ChainBuilder:
    return build_chain(BLOCKS)


def audit(builder: ChainBuilder, blocks: list[CommittedBlock | None]) -> ChainAudit:
    def feed() -> list[StoredBlock]:
        return [StoredBlock(h, b, None if b else "the block is missing")
                for h, b in enumerate(blocks, start=1)]
    result, _ = run_audit(builder.net.genesis, iter(feed()),
                          EngineReplayer(builder.net.genesis))
    return result


def at(findings: list[Finding], height: int, part: str | None = None) -> list[Finding]:
    return [f for f in findings if f.height == height and (part is None or f.part == part)]


def test_the_built_chain_is_intact_and_counted(chain: ChainBuilder) -> None:
    assert len(chain.validator_changes) == 2 and chain.validator_changes[0] == 4
    result, report = run_audit(chain.net.genesis, stored_blocks(chain.blocks),
                               EngineReplayer(chain.net.genesis))
    assert result.findings == []
    assert report.intact
    assert report.summary["blocks"] == BLOCKS
    assert report.summary["transactions"] == sum(
        len(b.block.transactions) for b in chain.blocks)
    assert report.summary["validator_set_changes"] == 2
    assert report.summary["municipalities"] == 4


def test_signatures_verified_by_a_pool_of_processes_agree(chain: ChainBuilder) -> None:
    blocks: list[CommittedBlock | None] = list(chain.blocks)
    h = 30
    blk = chain.blocks[h - 1]
    tx = blk.block.transactions[0]
    forged = dataclasses.replace(tx, signature=bytes(64))
    blocks[h - 1] = _with_txs(blk, (forged, *blk.block.transactions[1:]))
    with SignaturePool(2) as pool:
        result, _ = run_audit(chain.net.genesis,
                              iter([StoredBlock(i, b) for i, b in enumerate(blocks, 1)]),
                              None, pool=pool)
    bad = at(result.findings, h, "transaction")
    assert len(bad) == 1 and bad[0].tx_id == tx.tx_id.hex() and bad[0].position == 0
    assert "signature" in bad[0].message


def _with_txs(blk: CommittedBlock, txs: tuple[Transaction, ...]) -> CommittedBlock:
    return CommittedBlock(Block(blk.block.header, txs), blk.certificate, blk.receipts)


def _first_with_txs(chain: ChainBuilder, after: int) -> CommittedBlock:
    return next(b for b in chain.blocks[after:] if b.block.transactions)


def test_an_altered_payload_is_found_at_its_height_and_position(chain: ChainBuilder) -> None:
    blk = _first_with_txs(chain, 40)
    h = blk.height
    tx = blk.block.transactions[0]
    altered = dataclasses.replace(tx, payload={**tx.payload, "siret": "00000000000000"})
    blocks: list[CommittedBlock | None] = list(chain.blocks)
    blocks[h - 1] = _with_txs(blk, (altered, *blk.block.transactions[1:]))
    findings = audit(chain, blocks).findings
    assert any(f.part == "transaction" and f.position == 0 and "signature" in f.message
               for f in at(findings, h))
    assert any("txs_root" in f.message for f in at(findings, h, "block"))
    assert min(f.height for f in findings) == h


def test_an_altered_receipt_is_found_against_the_header_and_the_replay(
    chain: ChainBuilder,
) -> None:
    blk = _first_with_txs(chain, 50)
    h = blk.height
    r = blk.receipts[0]
    blocks: list[CommittedBlock | None] = list(chain.blocks)
    blocks[h - 1] = dataclasses.replace(
        blk, receipts=(Receipt(r.tx_id, "ok", "edited", r.data), *blk.receipts[1:]))
    findings = audit(chain, blocks).findings
    assert {f.part for f in findings} == {"receipt"}
    assert all(f.height == h for f in findings)
    assert any(f.position == 0 and "replay" in f.message for f in findings)
    assert any("results_root" in f.message for f in findings)


def test_a_missing_block_and_later_findings_are_all_reported(chain: ChainBuilder) -> None:
    blocks: list[CommittedBlock | None] = list(chain.blocks)
    blocks[59] = None
    late = chain.blocks[120]
    blocks[120] = dataclasses.replace(
        late, certificate=dataclasses.replace(
            late.certificate, signatures=late.certificate.signatures[:2]))
    findings = audit(chain, blocks).findings
    assert any(f.part == "block" and "missing" in f.message for f in at(findings, 60))
    assert any("replay stopped" in f.message for f in at(findings, 60, "state"))
    assert any("quorum" in f.message for f in at(findings, 121, "certificate"))


def test_two_swapped_blocks_are_both_reported(chain: ChainBuilder) -> None:
    blocks: list[CommittedBlock | None] = list(chain.blocks)
    blocks[69], blocks[70] = blocks[70], blocks[69]
    findings = audit(chain, blocks).findings
    assert any("is block 71" in f.message for f in at(findings, 70, "block"))
    assert any("is block 70" in f.message for f in at(findings, 71, "block"))


def _recertified(chain: ChainBuilder, blk: CommittedBlock, signers: list[bytes]
                 ) -> CommittedBlock:
    cert = chain.certify(blk.block.header, chain.validators_at(blk.height), signers)
    return dataclasses.replace(blk, certificate=cert)


def test_a_certificate_by_a_removed_validator_is_refused(chain: ChainBuilder) -> None:
    removed = key_for(f"validator:{REMOVED_TOWN[1]}").public_key
    late = chain.blocks[-3]
    validators = chain.validators_at(late.height)
    assert removed not in validators.keys
    signers = sorted([*validators.keys[: validators.quorum - 1], removed])
    blocks: list[CommittedBlock | None] = list(chain.blocks)
    blocks[late.height - 1] = _recertified(chain, late, signers)
    findings = audit(chain, blocks).findings
    assert len(findings) == 1
    assert findings[0].height == late.height and findings[0].part == "certificate"
    assert "not a validator at this height" in findings[0].message


def test_the_validator_schedule_follows_checkpoints() -> None:
    # decided at 4, certified at 4 + 2 = 6, boundary 8: in force from 9
    assert effective_height(4, 8, 2) == 9
    assert effective_height(6, 8, 2) == 9
    assert effective_height(7, 8, 2) == 17
    assert effective_height(14, 16, 2) == 17


def test_a_forged_signature_byte_in_a_certificate_is_found(chain: ChainBuilder) -> None:
    blk = chain.blocks[99]
    sigs = list(blk.certificate.signatures)
    s = sigs[1]
    sigs[1] = CommitSignature(s.voter, bytes([s.signature[0] ^ 1]) + s.signature[1:])
    cert = CommitCertificate(blk.certificate.height, blk.certificate.view,
                             blk.certificate.block_hash, tuple(sigs))
    blocks: list[CommittedBlock | None] = list(chain.blocks)
    blocks[99] = dataclasses.replace(blk, certificate=cert)
    findings = audit(chain, blocks).findings
    assert [(f.height, f.part) for f in findings] == [(100, "certificate")]
    assert "signature 1" in findings[0].message


ALTER_HEADER: list[tuple[str, Callable[[CommittedBlock], CommittedBlock]]] = [
    ("time", lambda b: dataclasses.replace(b, block=dataclasses.replace(
        b.block, header=dataclasses.replace(b.block.header, time_ms=b.block.header.time_ms + 1)
    ))),
]


@pytest.mark.parametrize(("name", "alter"), ALTER_HEADER)
def test_an_altered_header_breaks_its_certificate_and_the_next_link(
    chain: ChainBuilder, name: str, alter: Callable[[CommittedBlock], CommittedBlock]
) -> None:
    blocks: list[CommittedBlock | None] = list(chain.blocks)
    blocks[79] = alter(chain.blocks[79])
    findings = audit(chain, blocks).findings
    assert any(f.part == "certificate" for f in at(findings, 80))
    assert any("prev_hash" in f.message for f in at(findings, 81, "header"))


def test_a_certified_payload_with_a_field_no_schema_has_is_reported() -> None:
    """Blocks certified before validators checked schemas (or by a faulty quorum) may hold
    a transaction smuggling a field, where personal data could hide: the audit names it,
    even though its receipt (invalid_payload) is what execution gives."""
    builder = build_chain(6)
    clerk = SIGNER_KEYS[0]
    payload = {**anchor_payload(clerk, 99), "beneficiary": "Jeanne Dupont"}
    smuggled = signed_tx(clerk, 99, payload=payload,
                         expiry_ms=builder.time_ms + 3_600_000)
    blk = builder.add_block([smuggled])
    assert blk.receipts[0].code == "invalid_payload"
    result, report = run_audit(builder.net.genesis, stored_blocks(builder.blocks),
                               EngineReplayer(builder.net.genesis))
    (finding,) = result.findings
    assert (finding.height, finding.part, finding.position) == (blk.height, "transaction", 0)
    assert "beneficiary" in finding.message and "personal data" in finding.message
    assert not report.intact

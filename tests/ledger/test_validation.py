"""ledger.validation: a valid block passes, and each rule, when broken alone, raises its
own error whose message names the height and the rule."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from ledger.crypto import SigningKey
from ledger.errors import InvalidBlock, InvalidCertificate, InvalidTransaction
from ledger.genesis import ConsensusParams
from ledger.merkle import EMPTY_ROOT
from ledger.records import (
    Block,
    BlockHeader,
    CommitCertificate,
    CommitSignature,
    Phase,
    Receipt,
    Transaction,
    ValidatorSet,
    Vote,
)
from ledger.validation import (
    TX_EXPIRY_HORIZON_MS_MAX,
    check_execution_roots,
    check_transaction,
    receipts_root,
    txs_root,
    validate_block,
    verify_certificate,
)

CHAIN = "tabellion-test"
HEIGHT = 5
PREV_HASH = b"\x44" * 32
PREV_TIME_MS = 1_700_000_000_000
TIME_MS = PREV_TIME_MS + 1_000
VALIDATOR_KEYS = [SigningKey(bytes([0xA0 + i]) * 32) for i in range(4)]
VALIDATORS = ValidatorSet.of([k.public_key for k in VALIDATOR_KEYS])
CLERK = SigningKey(b"\x07" * 32)
OUTSIDER = SigningKey(b"\x08" * 32)
PARAMS = ConsensusParams()


def tx(nonce: int, *, expiry_ms: int = TIME_MS + 60_000, chain_id: str = CHAIN,
       key: SigningKey = CLERK) -> Transaction:
    return Transaction(chain_id, "notary", "anchor", {"sha256": f"{nonce:064x}"},
                       key.public_key, nonce, expiry_ms).signed(key)


def header_for(txs: tuple[Transaction, ...], **changes: Any) -> BlockHeader:
    header = BlockHeader(
        chain_id=CHAIN, height=HEIGHT, prev_hash=PREV_HASH, proposer=VALIDATORS.primary(2),
        view=2, time_ms=TIME_MS, txs_root=txs_root(txs), results_root=EMPTY_ROOT,
        state_root=b"\x55" * 32, validator_set_hash=VALIDATORS.set_hash,
    )
    return dataclasses.replace(header, **changes)


def block(txs: tuple[Transaction, ...] = (), **changes: Any) -> Block:
    txs = txs or (tx(1), tx(2), tx(3))
    return Block(header_for(txs, **changes), txs)


def validate(b: Block, params: ConsensusParams = PARAMS) -> None:
    validate_block(b, prev_hash=PREV_HASH, prev_height=HEIGHT - 1, prev_time_ms=PREV_TIME_MS,
                   chain_id=CHAIN, validators=VALIDATORS, params=params)


def certificate(header: BlockHeader, signers: list[SigningKey], *, view: int = 3,
                chain_id: str = CHAIN, phase: int = Phase.COMMIT) -> CommitCertificate:
    votes = [Vote.make(k, chain_id, phase, view, header.height, header.block_hash)
             for k in signers]
    return CommitCertificate.from_votes(votes)


def test_valid_block_and_certificate_pass() -> None:
    b = block()
    validate(b)
    for signers in (VALIDATOR_KEYS[:3], VALIDATOR_KEYS):
        verify_certificate(certificate(b.header, signers), b.header, VALIDATORS, chain_id=CHAIN)
    validate(block((tx(9),)))
    validate(Block(header_for(()), ()))  # an empty block is valid too


BLOCK_RULES: list[tuple[str, Callable[[], Block], ConsensusParams, str]] = [
    ("height", lambda: block(height=HEIGHT + 1), PARAMS, "expected height 5"),
    ("prev_hash", lambda: block(prev_hash=b"\x45" * 32), PARAMS, "prev_hash does not match"),
    ("time equal", lambda: block(time_ms=PREV_TIME_MS), PARAMS, "block time does not increase"),
    ("time before", lambda: block(time_ms=PREV_TIME_MS - 1), PARAMS,
     "block time does not increase"),
    ("chain id", lambda: block(chain_id="other-net"), PARAMS, "header is for network"),
    ("txs_root", lambda: block(txs_root=EMPTY_ROOT), PARAMS, "txs_root does not match"),
    ("validator set", lambda: block(validator_set_hash=b"\x00" * 32), PARAMS,
     "validator_set_hash is not the set in force"),
    ("proposer", lambda: block(proposer=OUTSIDER.public_key), PARAMS,
     "the proposer is not a validator"),
    ("tx count", block, dataclasses.replace(PARAMS, block_txs_max=2),
     "more than 2 transactions"),
    ("tx bytes", block, dataclasses.replace(PARAMS, block_bytes_max=300),
     "transactions exceed 300 bytes"),
    ("duplicate tx", lambda: block((tx(1), tx(2), tx(1))), PARAMS,
     "transaction 2 appears twice"),
    ("expired tx", lambda: block((tx(1), tx(2, expiry_ms=TIME_MS - 1))), PARAMS,
     "transaction 1: transaction [0-9a-f]{16} expired"),
    ("far expiry", lambda: block((tx(1, expiry_ms=TIME_MS + TX_EXPIRY_HORIZON_MS_MAX + 1),)),
     PARAMS, "transaction 0: .* expires more than 7 days ahead"),
    ("tx chain id", lambda: block((tx(1), tx(2, chain_id="other-net"))), PARAMS,
     "transaction 1: .* is for network 'other-net'"),
    ("bad tx signature", lambda: block((tx(1), dataclasses.replace(tx(2), signature=tx(3)
                                                                   .signature))), PARAMS,
     "transaction 1: .* has an invalid signature"),
    ("tx signer swapped", lambda: block((dataclasses.replace(tx(1), signer=OUTSIDER.public_key),)),
     PARAMS, "transaction 0: .* has an invalid signature"),
]


@pytest.mark.parametrize(("rule", "make", "params", "message"), BLOCK_RULES,
                         ids=[r[0] for r in BLOCK_RULES])
def test_each_block_rule(rule: str, make: Callable[[], Block], params: ConsensusParams,
                         message: str) -> None:
    b = make()
    with pytest.raises(InvalidBlock, match=f"^block {b.header.height}: {message}") as info:
        validate(b, params)
    assert info.value.height == b.header.height
    assert not isinstance(info.value, InvalidCertificate)


def _cert_rules() -> list[tuple[str, Callable[[BlockHeader], CommitCertificate], str]]:
    good = VALIDATOR_KEYS[:3]

    def dup(h: BlockHeader) -> CommitCertificate:
        c = certificate(h, good)
        return dataclasses.replace(c, signatures=(c.signatures[0], *c.signatures))

    def unsorted(h: BlockHeader) -> CommitCertificate:
        c = certificate(h, good)
        return dataclasses.replace(c, signatures=tuple(reversed(c.signatures)))

    def outsider(h: BlockHeader) -> CommitCertificate:
        return certificate(h, [*good[:2], OUTSIDER])

    def bad_sig(h: BlockHeader) -> CommitCertificate:
        c = certificate(h, good)
        s = c.signatures[1]
        forged = CommitSignature(s.voter, c.signatures[0].signature)
        return dataclasses.replace(c, signatures=(c.signatures[0], forged, c.signatures[2]))

    def other_view(h: BlockHeader) -> CommitCertificate:
        return dataclasses.replace(certificate(h, good), view=4)

    return [
        ("cert height", lambda h: dataclasses.replace(certificate(h, good), height=HEIGHT + 1),
         "the certificate is for height 6"),
        ("cert hash", lambda h: dataclasses.replace(certificate(h, good), block_hash=b"\1" * 32),
         "the certificate is for another header"),
        ("below quorum", lambda h: certificate(h, good[:2]),
         "the certificate has 2 signatures; a quorum of 3 of 4 validators is needed"),
        ("empty", lambda h: certificate(h, good[:1]), "the certificate has 1 signatures"),
        ("duplicate voter", dup, "certificate voters are repeated or out of order"),
        ("unsorted voters", unsorted, "certificate voters are repeated or out of order"),
        ("voter not in set", outsider,
         r"certificate signature \d is from [0-9a-f]{16}, which is not a validator"),
        ("bad signature", bad_sig, "certificate signature 1 .* does not verify"),
        ("view differs from the votes", other_view, "certificate signature 0 .* does not verify"),
        ("prepare votes", lambda h: certificate(h, good, phase=Phase.PREPARE),
         "certificate signature 0 .* does not verify"),
        ("another network", lambda h: certificate(h, good, chain_id="other-net"),
         "certificate signature 0 .* does not verify"),
    ]


CERT_RULES = _cert_rules()


@pytest.mark.parametrize(("rule", "make", "message"), CERT_RULES, ids=[r[0] for r in CERT_RULES])
def test_each_certificate_rule(rule: str, make: Callable[[BlockHeader], CommitCertificate],
                               message: str) -> None:
    header = block().header
    with pytest.raises(InvalidCertificate, match=f"^block {HEIGHT}: {message}") as info:
        verify_certificate(make(header), header, VALIDATORS, chain_id=CHAIN)
    assert info.value.height == HEIGHT


def test_certificate_for_another_header_of_the_same_height() -> None:
    header = block().header
    rival = dataclasses.replace(header, time_ms=TIME_MS + 1)
    with pytest.raises(InvalidCertificate, match="for another header"):
        verify_certificate(certificate(rival, VALIDATOR_KEYS[:3]), header, VALIDATORS,
                           chain_id=CHAIN)


def test_certificate_checked_against_the_set_in_force() -> None:
    """The same certificate is good under the set that signed it and refused under the next
    one (reconfiguration: certificates are checked against the set at their height)."""
    header = block().header
    cert = certificate(header, VALIDATOR_KEYS[:3])
    next_set = ValidatorSet.of([k.public_key for k in VALIDATOR_KEYS[1:]] + [OUTSIDER.public_key])
    verify_certificate(cert, header, VALIDATORS, chain_id=CHAIN)
    with pytest.raises(InvalidCertificate, match="not a validator at this height"):
        verify_certificate(cert, header, next_set, chain_id=CHAIN)


def test_certificate_of_another_network_is_refused() -> None:
    """The same validator keys on a staging and a production network: a header certified
    on one never counts on the other, however valid its signatures."""
    staging = dataclasses.replace(block().header, chain_id="tabellion-staging")
    cert = certificate(staging, VALIDATOR_KEYS[:3], chain_id="tabellion-staging")
    verify_certificate(cert, staging, VALIDATORS, chain_id="tabellion-staging")
    with pytest.raises(InvalidCertificate, match="is for network 'tabellion-staging'"):
        verify_certificate(cert, staging, VALIDATORS, chain_id=CHAIN)


def test_quorum_grows_with_the_set() -> None:
    keys = [SigningKey(bytes([0xB0 + i]) * 32) for i in range(7)]
    seven = ValidatorSet.of([k.public_key for k in keys])
    h = dataclasses.replace(block().header, validator_set_hash=seven.set_hash)
    verify_certificate(certificate(h, keys[:5]), h, seven, chain_id=CHAIN)
    with pytest.raises(InvalidCertificate, match="a quorum of 5 of 7"):
        verify_certificate(certificate(h, keys[:4]), h, seven, chain_id=CHAIN)


def test_check_transaction_directly() -> None:
    check_transaction(tx(1), CHAIN, TIME_MS)
    check_transaction(tx(1, expiry_ms=TIME_MS), CHAIN, TIME_MS)  # expiry is inclusive
    with pytest.raises(InvalidTransaction, match="submit it again"):
        check_transaction(tx(1, expiry_ms=TIME_MS), CHAIN, TIME_MS + 1)
    with pytest.raises(InvalidTransaction, match="sign it again for this network"):
        check_transaction(tx(1), "other-net", TIME_MS)


def test_execution_roots_are_those_of_block_h_minus_d() -> None:
    receipts = [Receipt(tx(1).tx_id, "ok", "", {}), Receipt(tx(2).tx_id, "not_found", "x", {})]
    header = block(results_root=receipts_root(receipts)).header
    check_execution_roots(header, receipts_root(receipts), b"\x55" * 32)
    with pytest.raises(InvalidBlock, match=r"^block 5: results_root differs"):
        check_execution_roots(header, receipts_root(receipts[:1]), b"\x55" * 32)
    with pytest.raises(InvalidBlock, match=r"^block 5: state_root differs"):
        check_execution_roots(header, receipts_root(receipts), b"\x56" * 32)

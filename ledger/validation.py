"""Block, transaction and certificate validity as pure functions.

Rules:
- Each check recomputes what it checks (roots, hashes, signatures) from the data; it
  never trusts a stored or received summary.
- A failure raises the most specific error (``InvalidTransaction``, ``InvalidBlock``,
  ``InvalidCertificate``) with a message naming the height, the position and the rule.
- Execution results (``results_root``, ``state_root``) need the contracts and are checked
  by the caller that executes (see ``check_execution_roots``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ledger import crypto
from ledger.errors import InvalidBlock, InvalidCertificate, InvalidTransaction
from ledger.genesis import ConsensusParams
from ledger.merkle import merkle_root
from ledger.records import (
    Block,
    BlockHeader,
    CommitCertificate,
    Phase,
    Receipt,
    Transaction,
    ValidatorSet,
    Vote,
)

TX_EXPIRY_HORIZON_MS_MAX = 7 * 24 * 3600 * 1000
"""A transaction may not expire more than 7 days after the block that commits it: this
bounds how long the chain must remember committed ids to refuse replays."""


def txs_root(transactions: Sequence[Transaction]) -> bytes:
    """Merkle root of the canonical encodings of the transactions, in block order."""
    return merkle_root([tx.encode() for tx in transactions])


def receipts_root(receipts: Sequence[Receipt]) -> bytes:
    """Merkle root of the canonical encodings of the receipts, in block order."""
    return merkle_root([r.encode() for r in receipts])


SignatureCheck = Callable[[Transaction], bool]
"""Whether a transaction's signature verifies (a node passes its verified-signature cache;
the default verifies every time)."""


def _verify_signature(tx: Transaction) -> bool:
    return tx.signature_valid()


def check_transaction(tx: Transaction, chain_id: str, block_time_ms: int,
                      signature_valid: SignatureCheck = _verify_signature) -> None:
    """Raise ``InvalidTransaction`` unless ``tx`` may be committed at ``block_time_ms``."""
    if tx.chain_id != chain_id:
        raise InvalidTransaction(
            f"transaction {tx.tx_id.hex()[:16]} is for network {tx.chain_id!r}, "
            f"not {chain_id!r}: sign it again for this network"
        )
    if tx.expiry_ms < block_time_ms:
        raise InvalidTransaction(
            f"transaction {tx.tx_id.hex()[:16]} expired at {tx.expiry_ms} ms: submit it again"
        )
    if tx.expiry_ms > block_time_ms + TX_EXPIRY_HORIZON_MS_MAX:
        raise InvalidTransaction(
            f"transaction {tx.tx_id.hex()[:16]} expires more than 7 days ahead: "
            "choose an earlier expiry"
        )
    if not signature_valid(tx):
        raise InvalidTransaction(
            f"transaction {tx.tx_id.hex()[:16]} has an invalid signature: "
            "sign it with the key of its signer"
        )


def verify_certificate(
    cert: CommitCertificate, header: BlockHeader, validators: ValidatorSet, *, chain_id: str
) -> None:
    """Raise ``InvalidCertificate`` unless ``header`` belongs to network ``chain_id`` and
    ``cert`` is a quorum of valid COMMIT votes for exactly ``header``, each from a distinct
    member of ``validators`` (the set in force at its height). The chain id is compared
    first: the same keys may sign on a staging and a production network, and a
    certificate of the one must never count on the other."""
    height = header.height
    if header.chain_id != chain_id:
        raise InvalidCertificate(
            height, f"the certified header is for network {header.chain_id!r}, not {chain_id!r}")
    if cert.height != height:
        raise InvalidCertificate(height, f"the certificate is for height {cert.height}")
    if cert.block_hash != header.block_hash:
        raise InvalidCertificate(height, "the certificate is for another header")
    voters = [s.voter for s in cert.signatures]
    if voters != sorted(set(voters)):
        raise InvalidCertificate(height, "certificate voters are repeated or out of order")
    members = set(validators.keys)
    for position, sig in enumerate(cert.signatures):
        if sig.voter not in members:
            raise InvalidCertificate(
                height,
                f"certificate signature {position} is from {sig.voter.hex()[:16]}, "
                "which is not a validator at this height",
            )
    if len(voters) < validators.quorum:
        raise InvalidCertificate(
            height,
            f"the certificate has {len(voters)} signatures; "
            f"a quorum of {validators.quorum} of {validators.n} validators is needed",
        )
    body = Vote.body(header.chain_id, Phase.COMMIT, cert.view, height, cert.block_hash)
    for position, sig in enumerate(cert.signatures):
        if not crypto.verify(sig.voter, body, sig.signature):
            raise InvalidCertificate(
                height,
                f"certificate signature {position} (validator {sig.voter.hex()[:16]}) "
                "does not verify",
            )


def check_header_link(
    header: BlockHeader, prev_hash: bytes, prev_height: int, prev_time_ms: int, chain_id: str
) -> None:
    """Raise ``InvalidBlock`` unless ``header`` follows the given previous header."""
    height = header.height
    if header.chain_id != chain_id:
        raise InvalidBlock(height, f"header is for network {header.chain_id!r}")
    if height != prev_height + 1:
        raise InvalidBlock(height, f"expected height {prev_height + 1}")
    if header.prev_hash != prev_hash:
        raise InvalidBlock(height, "prev_hash does not match the previous header's hash")
    if header.time_ms <= prev_time_ms:
        raise InvalidBlock(height, "block time does not increase")


def validate_block(
    block: Block,
    *,
    prev_hash: bytes,
    prev_height: int,
    prev_time_ms: int,
    chain_id: str,
    validators: ValidatorSet,
    params: ConsensusParams,
    signature_valid: SignatureCheck = _verify_signature,
) -> None:
    """Check everything about ``block`` that needs no execution: the link, the proposer,
    the validator-set hash, the limits, the transactions root and every transaction.

    The one block check of the code base: consensus runs it at every door through which a
    block body arrives (own proposal, pre-prepare, NEW-VIEW re-proposal, state transfer,
    restart) before the body is stored, voted on or delivered. A header's signatures never
    cover its body; only this check binds the body to the header (``txs_root``)."""
    header = block.header
    height = header.height
    check_header_link(header, prev_hash, prev_height, prev_time_ms, chain_id)
    if header.validator_set_hash != validators.set_hash:
        raise InvalidBlock(height, "validator_set_hash is not the set in force")
    if header.proposer not in validators.keys:
        raise InvalidBlock(height, "the proposer is not a validator")
    if len(block.transactions) > params.block_txs_max:
        raise InvalidBlock(height, f"more than {params.block_txs_max} transactions")
    encoded = [tx.encode() for tx in block.transactions]
    if sum(map(len, encoded)) > params.block_bytes_max:
        raise InvalidBlock(height, f"transactions exceed {params.block_bytes_max} bytes")
    if merkle_root(encoded) != header.txs_root:
        raise InvalidBlock(height, "txs_root does not match the transactions")
    seen: set[bytes] = set()
    for position, tx in enumerate(block.transactions):
        tx_id = tx.tx_id  # computed from the encoding on each access: once per transaction
        if tx_id in seen:
            raise InvalidBlock(height, f"transaction {position} appears twice in the block")
        seen.add(tx_id)
        try:
            check_transaction(tx, chain_id, header.time_ms, signature_valid)
        except InvalidTransaction as exc:
            raise InvalidBlock(height, f"transaction {position}: {exc}") from exc


def check_execution_roots(
    header: BlockHeader, lagged_receipts_root: bytes, lagged_state_root: bytes
) -> None:
    """Raise ``InvalidBlock`` unless the header carries the results of block ``h - D``
    (``D`` = ``execution_lag``): its receipts root and the state root after it."""
    if header.results_root != lagged_receipts_root:
        raise InvalidBlock(
            header.height, "results_root differs from the receipts of block h - execution_lag"
        )
    if header.state_root != lagged_state_root:
        raise InvalidBlock(
            header.height, "state_root differs from the state after block h - execution_lag"
        )

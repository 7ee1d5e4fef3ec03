"""``tabellion receipt``: a portable proof that one record was committed, and its check.

Rules:
- A receipt file is JSON (docs/receipt.md, docs/receipt.schema.json). Every record in it
  travels as the hex of its canonical msgpack bytes: that is what hashes and signatures
  cover, so a verifier in any language decodes, hashes and checks; the ``readable``
  section repeats the record in plain JSON for people, and must agree with the bytes.
- Verification trusts nothing but the genesis file: the record's signature, its Merkle
  inclusion in the certified header of its block, the receipt's inclusion in the
  certified header ``D`` blocks later, and each certificate against the validator set in
  force at its height. That set is rebuilt from genesis through the listed validator-set
  changes, each proven by two certified state proofs of ``sys/validators`` (the state
  before and after the governance decision).
- A failure raises ``ReceiptError`` naming the part of the file that is wrong.
- Building (``build_receipt``) and verifying (``verify_receipt``) are pure; the sources
  (``StoreReceiptSource`` over a data directory, ``NodeReceiptSource`` over a node's
  ``GET /v1/receipts/{tx_id}``) do the reading; ``cli.receipt`` is a thin command.
- A listed validator-set change must be in force at or before ``h + D`` (the record's
  height plus the execution lag): an extra one proves nothing and is refused.
- The JSON forms of records are those of ``ledger.jsonview`` (one owner, bounded).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from contracts.keys import VALIDATORS_KEY
from ledger import jsonview
from ledger.encoding import encode
from ledger.errors import DecodeError, InvalidCertificate, InvalidProof, LedgerError
from ledger.files import read_text_bounded
from ledger.genesis import Genesis
from ledger.layout import STATE_PREFIX
from ledger.merkle import InclusionProof, inclusion_proof, verify_inclusion
from ledger.records import (
    BlockHeader,
    CommitCertificate,
    CommittedBlock,
    Receipt,
    Transaction,
    ValidatorSet,
)
from ledger.state import StateProof
from ledger.state_store import PersistentState
from ledger.store import ChainStore
from ledger.validation import verify_certificate
from ledger.validator_history import ValidatorHistory
from verify.proofs import validators_from_value, verify_validators_proof
from verify.sources import (
    AnswerTooLarge,
    NodeSource,
    NodeUnreachable,
    PrivateCopy,
    RequestSigner,
)

FORMAT = "tabellion-receipt/1"
RECEIPT_FILE_BYTES_MAX = 4 * 1024 * 1024
"""Largest receipt file accepted: a receipt is a few kilobytes plus 2 KiB per change."""
VALIDATOR_CHANGES_MAX = 1024
"""Most validator-set changes a receipt may list."""


class ReceiptError(LedgerError):
    """A receipt does not prove what it claims; ``part`` names the faulty section."""

    def __init__(self, part: str, reason: str) -> None:
        super().__init__(f"{part}: {reason}")
        self.part = part
        self.reason = reason


class ReceiptNotFound(ReceiptError):
    """No committed transaction has this id (on this chain)."""


class ReceiptNotReady(ReceiptError):
    """The transaction is committed, but the header certifying its outcome is not yet."""


def encode_state_proof(proof: StateProof) -> bytes:
    return encode(proof.to_value())


class ReceiptSource(Protocol):
    """What ``gather_receipt`` reads: a chain store (``--data``) or a node's API."""

    def head_height(self) -> int: ...

    def committed(self, height: int) -> CommittedBlock: ...

    def header(self, height: int) -> BlockHeader: ...

    def locate(self, tx_id: bytes) -> int: ...

    def validators_at(self, version: int) -> tuple[bytes | None, bytes]:
        """``sys/validators`` in the state after block ``version`` and its encoded proof."""
        ...


@dataclass(frozen=True, slots=True)
class CertifiedHeader:
    header: BlockHeader
    certificate: CommitCertificate


@dataclass(frozen=True, slots=True)
class StateEvidence:
    """The value of ``sys/validators`` in the state after block ``header.height - D``,
    proven against ``header.state_root``."""

    certified: CertifiedHeader
    value: bytes | None
    proof: bytes


@dataclass(frozen=True, slots=True)
class ValidatorChange:
    """A validator set decided by governance while executing block ``decided_at``."""

    decided_at: int
    validators: ValidatorSet
    before: StateEvidence
    after: StateEvidence


@dataclass(frozen=True, slots=True)
class ReceiptFacts:
    """What a verified receipt proves."""

    transaction: Transaction
    receipt: Receipt
    height: int
    header: BlockHeader
    certificate: CommitCertificate
    validators: ValidatorSet
    validator_changes: int


# --------------------------------------------------------------------------- JSON helpers


def _hex(data: bytes) -> str:
    return data.hex()


def _unhex(value: Any, part: str) -> bytes:
    if not isinstance(value, str):
        raise ReceiptError(part, "must be a hex string")
    try:
        return bytes.fromhex(value)
    except ValueError as exc:
        raise ReceiptError(part, "is not valid hex") from exc


def _get(obj: Any, key: str, part: str) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise ReceiptError(part, f"the field {key!r} is missing")
    return obj[key]


def _int(obj: Any, key: str, part: str) -> int:
    value = _get(obj, key, part)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ReceiptError(f"{part}.{key}", "must be a non-negative integer")
    return int(value)


def _proof_from_json(obj: Any, part: str) -> InclusionProof:
    try:
        return jsonview.proof_from_json(obj, part)
    except DecodeError as exc:
        raise ReceiptError(part, str(exc)) from exc


def _decode_record(cls: Any, obj: Any, key: str, part: str) -> Any:
    data = _unhex(_get(obj, key, part), f"{part}.{key}")
    try:
        return cls.decode(data)
    except DecodeError as exc:
        raise ReceiptError(f"{part}.{key}", f"is not a canonical {cls.KIND}: {exc}") from exc


def _certified_json(c: CertifiedHeader) -> dict[str, Any]:
    return {"header": _hex(c.header.encode()), "certificate": _hex(c.certificate.encode())}


def _certified_from_json(obj: Any, part: str) -> CertifiedHeader:
    return CertifiedHeader(
        _decode_record(BlockHeader, obj, "header", part),
        _decode_record(CommitCertificate, obj, "certificate", part),
    )


# --------------------------------------------------------------------------- building


def _record_section(
    block: CommittedBlock, results: CommittedBlock, position: int
) -> dict[str, Any]:
    txs = block.block.transactions
    receipts = block.receipts
    return {
        "height": block.height,
        "transaction": _hex(txs[position].encode()),
        "receipt": _hex(receipts[position].encode()),
        "tx_proof": jsonview.proof_to_json(
            inclusion_proof([t.encode() for t in txs], position)),
        "receipt_proof": jsonview.proof_to_json(
            inclusion_proof([r.encode() for r in receipts], position)),
        "block": _certified_json(CertifiedHeader(block.block.header, block.certificate)),
        "results_block": _certified_json(
            CertifiedHeader(results.block.header, results.certificate)),
    }


def _evidence_json(e: StateEvidence) -> dict[str, Any]:
    return {
        **_certified_json(e.certified),
        "value": None if e.value is None else _hex(e.value),
        "proof": _hex(e.proof),
    }


def _change_json(c: ValidatorChange) -> dict[str, Any]:
    return {
        "decided_at": c.decided_at,
        "validators": [_hex(k) for k in c.validators.keys],
        "before": _evidence_json(c.before),
        "after": _evidence_json(c.after),
    }


def build_receipt(
    genesis: Genesis,
    block: CommittedBlock,
    results: CommittedBlock,
    tx_id: bytes,
    changes: Sequence[ValidatorChange],
) -> dict[str, Any]:
    """The receipt document for transaction ``tx_id`` of ``block``; ``results`` is the
    block ``D`` heights later, whose header carries the receipts root of ``block``."""
    ids = [tx.tx_id for tx in block.block.transactions]
    if tx_id not in ids:
        raise ReceiptError("record", f"transaction {tx_id.hex()} is not in block {block.height}")
    position = ids.index(tx_id)
    tx = block.block.transactions[position]
    return {
        "format": FORMAT,
        "chain_id": genesis.chain_id,
        "genesis_hash": _hex(genesis.genesis_hash),
        "record": _record_section(block, results, position),
        "validator_changes": [_change_json(c) for c in changes],
        "readable": {
            "transaction": jsonview.tx_to_json(tx),
            "receipt": jsonview.receipt_to_json(block.receipts[position]),
            "header": jsonview.header_to_json(block.block.header),
        },
    }


def _certified_at(source: ReceiptSource, height: int) -> CertifiedHeader:
    block = source.committed(height)
    return CertifiedHeader(block.block.header, block.certificate)


def _evidence_at(source: ReceiptSource, version: int, lag: int) -> StateEvidence:
    value, proof = source.validators_at(version)
    return StateEvidence(_certified_at(source, version + lag), value, proof)


def find_validator_changes(
    genesis: Genesis, source: ReceiptSource, up_to: int,
    decided: Sequence[int] | None = None,
) -> list[ValidatorChange]:
    """Every validator-set change in force at or before height ``up_to``, with its
    evidence. ``decided``: the heights whose execution decided a set, when the caller
    knows them (a node's ``ValidatorHistory``): then only those are read. Otherwise scan
    the headers for a change of ``validator_set_hash`` and find the deciding block(s) in
    the window the effective-height rule allows."""
    params = genesis.consensus
    lag, interval = params.execution_lag, params.checkpoint_interval
    history = ValidatorHistory.from_genesis(genesis)
    if decided is not None:
        heights = sorted(c for c in set(decided) if history.effective(c) <= up_to)
        return [_change_at(source, c, lag) for c in heights]
    changes: list[ValidatorChange] = []
    previous_hash = genesis.validator_set.set_hash
    for height in range(1, up_to + 1):
        set_hash = source.header(height).validator_set_hash
        if set_hash == previous_hash:
            continue
        previous_hash = set_hash
        # effective_height(c) == height  <=>  height - 1 - K - D < c <= height - 1 - D
        low, high = max(1, height - interval - lag), height - 1 - lag
        before_value, _ = source.validators_at(low - 1)
        for version in range(low, high + 1):
            value, _ = source.validators_at(version)
            if value == before_value:
                continue
            changes.append(_change_at(source, version, lag))
            before_value = value
    return changes


def _change_at(source: ReceiptSource, decided: int, lag: int) -> ValidatorChange:
    """The change decided by block ``decided``, with the state before and after it."""
    value, _ = source.validators_at(decided)
    try:
        validators = validators_from_value(value)
    except InvalidProof as exc:
        raise ReceiptError("validator_changes", f"the state after block {decided}: "
                           f"{exc}") from exc
    return ValidatorChange(decided, validators, _evidence_at(source, decided - 1, lag),
                           _evidence_at(source, decided, lag))


def gather_receipt(
    genesis: Genesis, source: ReceiptSource, tx_id: bytes,
    decided: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Read everything a receipt for ``tx_id`` needs from ``source`` and build it
    (``decided``: see ``find_validator_changes``)."""
    lag = genesis.consensus.execution_lag
    height = source.locate(tx_id)
    head = source.head_height()
    if head < height + lag:
        raise ReceiptNotReady(
            "record", f"the transaction is at height {height:,} but its receipt is certified "
            f"only in header {height + lag:,} (head is {head:,}): try again in a moment")
    changes = find_validator_changes(genesis, source, height + lag, decided)
    return build_receipt(genesis, source.committed(height), source.committed(height + lag),
                         tx_id, changes)


# --------------------------------------------------------------------------- verifying


def _check_certified(
    c: CertifiedHeader, history: ValidatorHistory, genesis: Genesis, part: str
) -> None:
    h = c.header
    if h.chain_id != genesis.chain_id:
        raise ReceiptError(f"{part}.header", f"is for network {h.chain_id!r}")
    validators = history.at(h.height)
    if h.validator_set_hash != validators.set_hash:
        raise ReceiptError(
            f"{part}.header", f"height {h.height:,} names a validator set other than the one "
            "in force there (check validator_changes)")
    try:
        verify_certificate(c.certificate, h, validators, chain_id=genesis.chain_id)
    except InvalidCertificate as exc:
        raise ReceiptError(f"{part}.certificate", exc.reason) from exc


def _validators_value(validators: ValidatorSet) -> bytes:
    return encode([k.hex() for k in validators.keys])


def _check_evidence(
    e: StateEvidence, expected: ValidatorSet, at_state: int, history: ValidatorHistory,
    genesis: Genesis, part: str,
) -> None:
    lag = genesis.consensus.execution_lag
    if e.certified.header.height != at_state + lag:
        raise ReceiptError(
            f"{part}.header", f"must be header {at_state + lag:,} (state after block "
            f"{at_state:,})")
    _check_certified(e.certified, history, genesis, part)
    if e.value != _validators_value(expected):
        raise ReceiptError(f"{part}.value", "is not the validator set this change claims")
    try:
        verify_validators_proof(e.certified.header.state_root, e.value, e.proof)
    except (InvalidProof, DecodeError) as exc:
        raise ReceiptError(f"{part}.proof", f"does not prove the value: {exc}") from exc


def _changes_from_json(doc: Any) -> list[ValidatorChange]:
    raw = _get(doc, "validator_changes", "receipt")
    if not isinstance(raw, list) or len(raw) > VALIDATOR_CHANGES_MAX:
        raise ReceiptError("validator_changes", f"must be a list of <= {VALIDATOR_CHANGES_MAX}")
    changes = []
    for i, item in enumerate(raw):
        part = f"validator_changes[{i}]"
        keys = _get(item, "validators", part)
        if not isinstance(keys, list):
            raise ReceiptError(f"{part}.validators", "must be a list of hex keys")
        try:
            validators = ValidatorSet.of([_unhex(k, f"{part}.validators") for k in keys])
        except DecodeError as exc:
            raise ReceiptError(f"{part}.validators", str(exc)) from exc
        evidence = []
        for side in ("before", "after"):
            obj = _get(item, side, part)
            value = _get(obj, "value", f"{part}.{side}")
            evidence.append(StateEvidence(
                _certified_from_json(obj, f"{part}.{side}"),
                None if value is None else _unhex(value, f"{part}.{side}.value"),
                _unhex(_get(obj, "proof", f"{part}.{side}"), f"{part}.{side}.proof"),
            ))
        changes.append(ValidatorChange(
            _int(item, "decided_at", part), validators, evidence[0], evidence[1]))
    return changes


def verify_receipt(genesis: Genesis, doc: Any) -> ReceiptFacts:
    """Check a receipt document against the genesis file; return what it proves or raise
    ``ReceiptError`` naming the faulty part."""
    if _get(doc, "format", "receipt") != FORMAT:
        raise ReceiptError("format", f"must be {FORMAT!r}")
    if _get(doc, "chain_id", "receipt") != genesis.chain_id:
        raise ReceiptError("chain_id", "is not the network of this genesis file")
    if _unhex(_get(doc, "genesis_hash", "receipt"), "genesis_hash") != genesis.genesis_hash:
        raise ReceiptError("genesis_hash", "is not the hash of this genesis file")
    history = ValidatorHistory.from_genesis(genesis)
    params = genesis.consensus
    previous = genesis.validator_set
    last_decided = 0
    for i, change in enumerate(_changes_from_json(doc)):
        part = f"validator_changes[{i}]"
        if change.decided_at <= last_decided:
            raise ReceiptError(f"{part}.decided_at", "changes must be listed in height order")
        last_decided = change.decided_at
        # The state before the decision held the previous set, the state after it the new
        # one: the change happened exactly while executing block ``decided_at``.
        _check_evidence(change.before, previous, change.decided_at - 1, history, genesis,
                        f"{part}.before")
        _check_evidence(change.after, change.validators, change.decided_at, history,
                        genesis, f"{part}.after")
        history = history.record(change.decided_at, change.validators)
        previous = change.validators
    record = _get(doc, "record", "receipt")
    height = _int(record, "height", "record")
    for i, (decided_at, _) in enumerate(history.decisions):
        if history.effective(decided_at) > height + params.execution_lag:
            raise ReceiptError(
                f"validator_changes[{i}]", f"comes into force at height "
                f"{history.effective(decided_at):,}, after the record's results header "
                f"{height + params.execution_lag:,}: a receipt lists only the changes in "
                "force at or before it")
    tx: Transaction = _decode_record(Transaction, record, "transaction", "record")
    receipt: Receipt = _decode_record(Receipt, record, "receipt", "record")
    block = _certified_from_json(_get(record, "block", "record"), "record.block")
    results = _certified_from_json(_get(record, "results_block", "record"),
                                   "record.results_block")
    if tx.chain_id != genesis.chain_id:
        raise ReceiptError("record.transaction", f"is for network {tx.chain_id!r}")
    if not tx.signature_valid():
        raise ReceiptError("record.transaction", "the signature does not verify: the record "
                           "was altered after its author signed it")
    if block.header.height != height:
        raise ReceiptError("record.block.header", f"is for height {block.header.height}, "
                           f"not {height}")
    if results.header.height != height + params.execution_lag:
        raise ReceiptError("record.results_block.header", f"must be header "
                           f"{height + params.execution_lag:,} (height + execution_lag)")
    _check_certified(block, history, genesis, "record.block")
    _check_certified(results, history, genesis, "record.results_block")
    tx_proof = _proof_from_json(_get(record, "tx_proof", "record"), "record.tx_proof")
    try:
        verify_inclusion(tx.encode(), tx_proof, block.header.txs_root)
    except InvalidProof as exc:
        raise ReceiptError("record.tx_proof", f"the record is not in block {height:,}: "
                           f"{exc}") from exc
    if receipt.tx_id != tx.tx_id:
        raise ReceiptError("record.receipt", "is the receipt of another transaction")
    receipt_proof = _proof_from_json(_get(record, "receipt_proof", "record"),
                                     "record.receipt_proof")
    if receipt_proof.index != tx_proof.index:
        raise ReceiptError("record.receipt_proof", "is not at the record's position")
    try:
        verify_inclusion(receipt.encode(), receipt_proof, results.header.results_root)
    except InvalidProof as exc:
        raise ReceiptError("record.receipt_proof", "the receipt is not the one certified in "
                           f"header {results.header.height:,}: {exc}") from exc
    _check_readable(doc, tx, receipt, block.header)
    return ReceiptFacts(tx, receipt, height, block.header, block.certificate,
                        history.at(height), len(history.changes()))


def _check_readable(doc: Any, tx: Transaction, receipt: Receipt, header: BlockHeader) -> None:
    readable = doc.get("readable") if isinstance(doc, dict) else None
    if readable is None:
        return
    expected = {
        "transaction": jsonview.tx_to_json(tx), "receipt": jsonview.receipt_to_json(receipt),
        "header": jsonview.header_to_json(header),
    }
    for key, view in expected.items():
        if _get(readable, key, "readable") != view:
            raise ReceiptError(f"readable.{key}", "differs from the signed record: the plain "
                               "copy was altered")


# --------------------------------------------------------------------------- words


def _when(time_ms: int) -> str:
    return datetime.fromtimestamp(time_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _municipality_names(genesis: Genesis) -> dict[str, str]:
    return {m.siret: m.name for m in genesis.municipalities}


def _signer_municipality(genesis: Genesis, signer: bytes) -> str | None:
    for m in genesis.municipalities:
        if any(x.key == signer for x in m.members):
            return m.name
    return None


def _what(tx: Transaction, genesis: Genesis) -> str:
    p = tx.payload
    names = _municipality_names(genesis)
    town = p.get("COLL_NOM") or names.get(str(p.get("COLL_SIRET") or p.get("siret") or ""))
    town = town or _signer_municipality(genesis, tx.signer)
    of_town = f" of {town}" if town else ""
    if "DELIB_ID" in p:
        what = f"Deliberation {p['DELIB_ID']}{of_town}"
        if isinstance(p.get("VOTE_POUR"), int) and isinstance(p.get("VOTE_CONTRE"), int):
            outcome = "adopted" if p["VOTE_POUR"] > p["VOTE_CONTRE"] else "rejected"
            what += f", {outcome} {p['VOTE_POUR']} votes to {p['VOTE_CONTRE']}"
        return what
    if tx.contract == "notary" and "reference" in p:
        kind = str(p.get("document_type", "document")).replace("_", " ")
        return (f"Document {p['reference']} ({kind}, SHA-256 {str(p.get('sha256', ''))[:16]}…)"
                f"{of_town}")
    if tx.contract == "social_aid" and isinstance(p.get("amount_cents"), int):
        cents = p["amount_cents"]
        return (f"Social-aid payment of {cents // 100}.{cents % 100:02d} € under scheme "
                f"{p.get('scheme_id')} for {p.get('period')}{of_town}")
    if tx.contract == "reports" and tx.action == "submit":
        return f"Citizen report \u201c{p.get('service_code')}\u201d{of_town}"
    label = f"{tx.contract} {tx.action}".replace("_", " ")
    return f"Record \u201c{label}\u201d{of_town}"


def describe(facts: ReceiptFacts, genesis: Genesis) -> str:
    """One sentence a clerk understands, saying what the receipt proves."""
    signers = len(facts.certificate.signatures)
    n = facts.validators.n
    outcome = "" if facts.receipt.ok else (
        f" (it was recorded but refused by the rules: {facts.receipt.message})")
    return (
        f"{_what(facts.transaction, genesis)}, was recorded at height {facts.height:,} on "
        f"{_when(facts.header.time_ms)} and certified by {signers} of {n} municipalities"
        f"{outcome}."
    )


def load_receipt_text(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReceiptError("file", f"is not valid JSON: {exc}") from exc


def read_receipt_file(path: Path) -> Any:
    text = read_text_bounded(Path(path), RECEIPT_FILE_BYTES_MAX, "receipt file",
                             lambda message: ReceiptError("file", message))
    return load_receipt_text(text)


def write_receipt_file(doc: dict[str, Any], path: Path) -> int:
    text = json.dumps(doc, indent=1, ensure_ascii=False) + "\n"
    Path(path).write_text(text, encoding="utf-8")
    return len(text.encode())



class ChainReceiptSource:
    """A ``ReceiptSource`` over an open chain store and its state (a running node's, or
    a private copy's)."""

    def __init__(self, store: ChainStore, state: PersistentState) -> None:
        self._store = store
        self._state = state

    def head_height(self) -> int:
        return self._store.head_height()

    def committed(self, height: int) -> CommittedBlock:
        return self._store.get(height)

    def header(self, height: int) -> BlockHeader:
        return self._store.header(height)

    def locate(self, tx_id: bytes) -> int:
        found = self._store.transaction(tx_id)
        if found is None:
            raise ReceiptNotFound("record", f"transaction {tx_id.hex()} is not on this chain")
        return int(found[2].height)

    def validators_at(self, version: int) -> tuple[bytes | None, bytes]:
        value = self._state.get(VALIDATORS_KEY, version)
        return value, encode_state_proof(self._state.prove(VALIDATORS_KEY, version))


class StoreReceiptSource(ChainReceiptSource):
    """A ``ReceiptSource`` over a private copy of a node's data directory."""

    def __init__(self, data: Path) -> None:
        self._copy = PrivateCopy(data)
        store = self._copy.open()
        super().__init__(store, PersistentState(store.kv.prefixed(STATE_PREFIX)))

    def close(self) -> None:
        self._store.close()
        self._copy.cleanup()


def validator_changes_json(genesis: Genesis, source: ReceiptSource,
                           decided: Sequence[int], up_to: int) -> list[dict[str, Any]]:
    """The ``validator_changes`` section (docs/receipt.md) of every change in force at or
    before ``up_to``, from the heights that decided them: the compact proof of the
    validator history since genesis that every node serves."""
    lag = genesis.consensus.execution_lag
    return [_change_json(c) for c in find_validator_changes(genesis, source, up_to,
                                                           decided)] if up_to > lag else []


RECEIPT_ROUTE = "/v1/receipts/{tx_id}"
"""Where every node serves the whole receipt of a committed transaction (docs/api.md)."""


def fetch_receipt(url: str, tx_id: bytes, sign: RequestSigner | None = None) -> Any:
    """The receipt document a node serves for ``tx_id`` (not yet verified: the caller
    runs ``verify_receipt``). ``ReceiptError`` if the node has none (unknown, or not
    certified yet); ``NodeUnreachable`` if the node does not answer as a node."""
    node = NodeSource(url, sign)
    try:
        # Streamed and cut at the limit: a node cannot make the reader hold more.
        answer = node.fetch(RECEIPT_ROUTE.format(tx_id=tx_id.hex()), RECEIPT_FILE_BYTES_MAX)
    except AnswerTooLarge as exc:
        raise ReceiptError("file", f"the node sent more than {RECEIPT_FILE_BYTES_MAX:,} "
                           "bytes for one receipt: it is not a receipt") from exc
    finally:
        node.close()
    if answer.status in (401, 403):
        raise ReceiptError("record", f"the node refuses this read ({answer.text[:300]}): a "
                           "social-aid payment's receipt needs --key (a member of the paying "
                           "town, or an auditor)")
    if answer.status in (404, 409):
        try:
            message = answer.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = answer.text[:200]
        error = ReceiptNotFound if answer.status == 404 else ReceiptNotReady
        raise error("record", str(message))
    if answer.status != 200:
        raise NodeUnreachable(f"{url} answered {answer.status} for the receipt: "
                              f"{answer.text[:200]}")
    return load_receipt_text(answer.text)


__all__ = [
    "FORMAT",
    "ChainReceiptSource",
    "ReceiptError",
    "ReceiptFacts",
    "ReceiptNotFound",
    "ReceiptNotReady",
    "StateEvidence",
    "StoreReceiptSource",
    "ValidatorChange",
    "build_receipt",
    "describe",
    "fetch_receipt",
    "gather_receipt",
    "read_receipt_file",
    "validator_changes_json",
    "verify_receipt",
    "write_receipt_file",
]



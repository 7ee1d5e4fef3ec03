"""The checker of a replica's persisted records (``p/`` of a data directory) for the audit.

Rules:
- ``verify`` does not import ``consensus`` (tests/test_architecture.py); the node, which
  writes these records (``node.runtime`` for ``consensus.persist``), knows both and hands
  this checker to ``verify.stored``.
- Signed records are checked by their signatures and their internal consistency (a
  block's transactions against its ``txs_root``), and against the chain where the chain
  decides: a committed block (``done/``), a prepared certificate (``prep/``) and a COMMIT
  vote at a height the chain holds must name the chain's block (PBFT safety: whatever
  prepared or was committed at a height is the block committed there).
- What cannot be checked is said: a PREPARE or COMMIT vote record holds only the block
  hash the replica voted for (unsigned); above the head, or for a PREPARE of a proposal
  that did not commit, it is counted unverifiable. So is ``view`` (the replica's own
  view number, unsigned, nothing to compare with) and the ``vsets`` record of older
  versions (ignored by the node).
"""

from __future__ import annotations

from collections.abc import Mapping

from consensus import persist as keys
from consensus.messages import (
    CertifiedHeader,
    Checkpoint,
    CommittedProof,
    NewView,
    PreparedCertificate,
    PrePrepare,
    Proposal,
    ViewChange,
    decode_message,
    signature_valid,
)
from ledger.encoding import decode
from ledger.errors import DecodeError, InvalidCertificate
from ledger.genesis import Genesis
from ledger.records import Block, Phase
from ledger.validation import txs_root, verify_certificate
from verify.findings import Finding
from verify.stored import ChainView, Verdict

LEGACY_KEYS = (b"vsets",)
"""Records written by older versions and ignored by the node."""


class ConsensusRecords:
    """``verify.stored.ConsensusRecordChecker`` for the records of ``consensus.persist``."""

    def __init__(self, genesis: Genesis) -> None:
        self._chain_id = genesis.chain_id

    def check(self, key: bytes, value: bytes, chain: ChainView,
              records: Mapping[bytes, bytes]) -> Verdict:
        try:
            return self._check(key, value, chain, records)
        except (DecodeError, ValueError) as exc:
            return _bad(key, 0, f"does not decode ({exc})")

    def _check(self, key: bytes, value: bytes, chain: ChainView,
               records: Mapping[bytes, bytes]) -> Verdict:
        if key == keys.KEY_VIEW:
            view = decode(value)
            if not (isinstance(view, list) and len(view) == 2 and isinstance(view[0], int)
                    and isinstance(view[1], bool)):
                return _bad(key, 0, "is not [view, active]")
            return Verdict(unverifiable="p/view (the replica's current view): unsigned, "
                           "nothing to compare it with")
        if key in LEGACY_KEYS:
            return Verdict(unverifiable=f"p/{key.decode()} (record of an older version, "
                           "ignored by the node)")
        if key.startswith(keys.PREFIX_VOTE):
            return self._vote(key, value, chain, records)
        if key.startswith(keys.PREFIX_PREPARED):
            height = keys.parse_height_key(keys.PREFIX_PREPARED, key)
            pair = decode(value)
            if not isinstance(pair, list) or len(pair) != 2:
                return _bad(key, height, "is not [prepared certificate, body]")
            cert = PreparedCertificate.from_value(pair[0])
            return self._prepared(key, height, cert, Block.from_value(pair[1]), chain)
        if key.startswith(keys.PREFIX_COMMITTED):
            height = keys.parse_height_key(keys.PREFIX_COMMITTED, key)
            return self._committed(key, height, CommittedProof.from_value(decode(value)), chain)
        if key == keys.KEY_STABLE:
            proof = decode(value)
            if not isinstance(proof, list):
                return _bad(key, 0, "is not a list of checkpoints")
            return self._checkpoints(key, [Checkpoint.from_value(c) for c in proof], chain)
        if key == keys.KEY_VIEW_CHANGE:
            vc = decode_message(value)
            if not isinstance(vc, ViewChange):
                return _bad(key, 0, "is not a VIEW-CHANGE")
            return self._view_change(key, vc, chain)
        if key == keys.KEY_NEW_VIEW:
            nv = decode_message(value)
            if not isinstance(nv, NewView):
                return _bad(key, 0, "is not a NEW-VIEW")
            return self._new_view(key, nv, chain)
        return _bad(key, 0, "is a record no replica writes")

    # ------------------------------------------------------------------ records

    def _vote(self, key: bytes, value: bytes, chain: ChainView,
              records: Mapping[bytes, bytes]) -> Verdict:
        height, view, phase = keys.parse_vote_key(key)
        if phase == keys.PHASE_PRE_PREPARE:
            pp = decode_message(value)
            if (not isinstance(pp, PrePrepare | Proposal) or pp.height != height
                    or pp.view != view):
                return _bad(key, height, "is not the pre-prepare of its height and view")
            return _verdict(key, height, self._pre_prepare(key, pp, chain))
        if phase not in (Phase.PREPARE, Phase.COMMIT):
            return _bad(key, height, f"names an unknown phase {phase}")
        if len(value) != 32:
            return _bad(key, height, "is not a 32-byte block hash")
        stored = chain.block_hash(height)
        if stored == value:
            return Verdict()
        if stored is not None and phase == Phase.COMMIT:
            return _bad(key, height, "is a COMMIT vote for another block than the one the "
                        "chain holds at this height")
        signed = _signed_proposal(records, height, view)
        if signed is not None:
            if signed == value:
                return Verdict()
            return _bad(key, height, "names another block than the signed proposal this "
                        "replica holds for the same height and view")
        where = "above the chain head" if stored is None else "for a proposal that did not commit"
        return Verdict(unverifiable=f"PREPARE/COMMIT vote records (p/vote/) {where}: an "
                       "unsigned block hash")

    def _pre_prepare(self, key: bytes, pp: PrePrepare | Proposal,
                     chain: ChainView) -> list[str]:
        """A pre-prepare (with its body) or a proposal (its header only): the primary's
        signature covers the header hash; a body is bound to it by ``txs_root``."""
        problems = []
        if pp.chain_id != self._chain_id:
            problems.append(f"is for network {pp.chain_id!r}")
        if not signature_valid(pp):
            problems.append("holds a pre-prepare whose signature does not verify")
        if pp.sender not in chain.validators_at(pp.height).keys:
            problems.append("holds a pre-prepare from a key that is not a validator there")
        if isinstance(pp, PrePrepare):
            problems.extend(_block_problems(pp.block))
        return problems

    def _prepared(self, key: bytes, height: int, cert: PreparedCertificate, body: Block,
                  chain: ChainView) -> Verdict:
        problems = self._pre_prepare(key, cert.proposal, chain)
        if body.header != cert.proposal.header:
            problems.append("holds a body whose header is not the prepared one")
        problems.extend(_block_problems(body))
        if cert.height != height:
            problems.append(f"holds the certificate of height {cert.height:,}")
        validators = chain.validators_at(height).keys
        for vote in cert.prepares:
            if (vote.block_hash != cert.proposal.block_hash or vote.view != cert.view
                    or vote.height != height or vote.chain_id != self._chain_id):
                problems.append("holds a PREPARE for another place or block")
            elif vote.voter not in validators or not vote.signature_valid():
                problems.append("holds a PREPARE whose signature does not verify")
        stored = chain.block_hash(height)
        if stored is not None and stored != cert.proposal.block_hash:
            problems.append("prepared another block than the one the chain holds")
        return _verdict(key, height, problems)

    def _committed(self, key: bytes, height: int, proof: CommittedProof,
                   chain: ChainView) -> Verdict:
        return _verdict(key, height, self._committed_problems(height, proof, chain))

    def _committed_problems(self, height: int, proof: CommittedProof | CertifiedHeader,
                            chain: ChainView) -> list[str]:
        """A committed block (or, in a VIEW-CHANGE, its certified header)."""
        if isinstance(proof, CommittedProof):
            problems = list(_block_problems(proof.block))
            header = proof.block.header
        else:
            problems, header = [], proof.header
        if header.height != height:
            problems.append(f"holds block {header.height:,}")
        try:
            verify_certificate(proof.certificate, header, chain.validators_at(height),
                               chain_id=self._chain_id)
        except InvalidCertificate as exc:
            problems.append(f"holds a certificate that does not verify: {exc.reason}")
        stored = chain.block_hash(height)
        if stored is not None and stored != header.block_hash:
            problems.append("holds another block than the one the chain holds")
        return problems

    def _checkpoints(self, key: bytes, proof: list[Checkpoint], chain: ChainView) -> Verdict:
        problems = []
        for cp in proof:
            if cp.chain_id != self._chain_id or not signature_valid(cp):
                problems.append("holds a checkpoint whose signature does not verify")
            elif cp.sender not in chain.validators_at(cp.height).keys:
                problems.append("holds a checkpoint from a key that is not a validator")
            stored = chain.block_hash(cp.height)
            if stored is not None and stored != cp.block_hash:
                problems.append("holds a checkpoint of another block than the chain's")
        return _verdict(key, proof[0].height if proof else 0, problems)

    def _view_change(self, key: bytes, vc: ViewChange, chain: ChainView) -> Verdict:
        # The signature covers every field, nested blocks included.
        head = chain.head_height()
        if vc.chain_id != self._chain_id or not signature_valid(vc):
            return _bad(key, head, "holds a VIEW-CHANGE whose signature does not verify")
        problems = [p for c in vc.committed
                    for p in self._committed_problems(c.height, c, chain)]
        return _verdict(key, head, problems)

    def _new_view(self, key: bytes, nv: NewView, chain: ChainView) -> Verdict:
        head = chain.head_height()
        problems = []
        if nv.chain_id != self._chain_id or not signature_valid(nv):
            problems.append("holds a NEW-VIEW whose signature does not verify")
        for vc in nv.view_changes:
            if not signature_valid(vc):
                problems.append("holds a VIEW-CHANGE whose signature does not verify")
        for pp in nv.pre_prepares:  # signed through their hashes only: check each
            problems.extend(self._pre_prepare(key, pp, chain))
        return _verdict(key, head, problems)


def _signed_proposal(records: Mapping[bytes, bytes], height: int, view: int) -> bytes | None:
    """The block hash a signed record of this replica names at (height, view): its own
    pre-prepare there, or its prepared certificate if of that view. A replica votes
    PREPARE and COMMIT at a place only for the pre-prepare it accepted there."""
    try:
        raw = records.get(keys.vote_key(height, view, keys.PHASE_PRE_PREPARE))
        if raw is not None:
            pp = decode_message(raw)
            if isinstance(pp, PrePrepare | Proposal) and signature_valid(pp):
                return bytes(pp.block_hash)
        raw = records.get(keys.height_key(keys.PREFIX_PREPARED, height))
        if raw is not None:
            pair = decode(raw)
            if not isinstance(pair, list) or len(pair) != 2:
                return None
            cert = PreparedCertificate.from_value(pair[0])
            if cert.view == view and signature_valid(cert.proposal):
                return bytes(cert.proposal.block_hash)
    except DecodeError:
        return None  # that record is reported on its own
    return None


def _block_problems(block: Block) -> list[str]:
    if txs_root(block.transactions) != block.header.txs_root:
        return ["holds a block whose transactions do not match its txs_root"]
    return []


def _where(key: bytes) -> str:
    """The record's key in words: ``p/done/<height>``, ``p/vote/<h>/<view>/<phase>``..."""
    try:
        if key.startswith(keys.PREFIX_VOTE):
            height, view, phase = keys.parse_vote_key(key)
            return f"p/vote/{height}/{view}/{phase}"
        for prefix in (keys.PREFIX_PREPARED, keys.PREFIX_COMMITTED):
            if key.startswith(prefix):
                return f"p/{prefix.decode()}{keys.parse_height_key(prefix, key)}"
    except DecodeError:
        pass
    return "p/" + (key.decode() if key.isascii() and key.decode().isprintable() else key.hex())


def _bad(key: bytes, height: int, problem: str) -> Verdict:
    return _verdict(key, height, [problem])


def _verdict(key: bytes, height: int, problems: list[str]) -> Verdict:
    return Verdict(tuple(Finding(height, "consensus", f"the consensus record {_where(key)} "
                                 f"{problem}") for problem in dict.fromkeys(problems)))

"""The replica's working records (``p/`` of a data directory), written as a replica at the
head of a built chain holds them: real consensus messages with real signatures, under the
keys of ``consensus.persist`` (what ``node.runtime`` writes for ``Persist`` effects)."""

from __future__ import annotations

from consensus import persist as keys
from consensus.messages import (
    Checkpoint,
    CommittedProof,
    NewView,
    PreparedCertificate,
    PrePrepare,
    ViewChange,
    encode_message,
)
from ledger.encoding import encode
from ledger.kv import KV
from ledger.layout import CONSENSUS_PREFIX
from ledger.records import CommittedBlock, Phase, Vote
from testkit.chainbuilder import ChainBuilder


def replica_records(builder: ChainBuilder, blocks: list[CommittedBlock]) -> dict[bytes, bytes]:
    """Records of the validator ``me`` (the first of the set at the head): the head block
    committed in view 0 (pre-prepare, votes, prepared certificate, committed proof), the
    stable checkpoint two heights below, then a view change to view 1 entered."""
    g = builder.net.genesis
    chain_id = g.chain_id
    head = blocks[-1]
    h = head.height
    validators = builder.validators_at(h)
    signers = [builder.keys_by_public[k] for k in validators.keys]
    me, primary = signers[0], builder.keys_by_public[validators.primary(0)]
    block = head.block
    pp = PrePrepare.make(primary, chain_id, 0, block)
    prepares = tuple(sorted(
        [Vote.make(k, chain_id, Phase.PREPARE, 0, h, pp.block_hash)
         for k in signers if k.public_key != primary.public_key][:validators.quorum - 1],
        key=lambda v: v.voter))
    prepared = PreparedCertificate(pp.proposal(), prepares)
    committed = CommittedProof(block, head.certificate)
    stable_block = blocks[-3]
    stable = tuple(sorted(
        [Checkpoint.make(k, chain_id, stable_block.height, stable_block.block.header.block_hash,
                         stable_block.block.header.time_ms, b"\x07" * 32)
         for k in signers[:validators.quorum]], key=lambda c: c.sender))
    view_changes = tuple(
        ViewChange.make(k, chain_id, 1, stable, (prepared,), (committed.certified_header(),))
        for k in signers[:validators.quorum])
    new_primary = builder.keys_by_public[validators.primary(1)]
    nv = NewView.make(new_primary, chain_id, 1, view_changes,
                      (PrePrepare.make(new_primary, chain_id, 1, block).proposal(),))
    mine = next(vc for vc in view_changes if vc.sender == me.public_key)
    return {
        keys.KEY_VIEW: encode([1, True]),
        keys.vote_key(h, 0, keys.PHASE_PRE_PREPARE): encode_message(pp),
        keys.vote_key(h, 0, Phase.PREPARE): pp.block_hash,
        keys.vote_key(h, 0, Phase.COMMIT): pp.block_hash,
        keys.height_key(keys.PREFIX_PREPARED, h): encode([prepared.to_value(),
                                                          block.to_value()]),
        keys.height_key(keys.PREFIX_COMMITTED, h): encode(committed.to_value()),
        keys.KEY_STABLE: encode([c.to_value() for c in stable]),
        keys.KEY_VIEW_CHANGE: encode_message(mine),
        keys.KEY_NEW_VIEW: encode_message(nv),
    }


def write_replica_records(kv: KV, records: dict[bytes, bytes]) -> None:
    for key, value in records.items():
        kv.put(CONSENSUS_PREFIX + key, value)

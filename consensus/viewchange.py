"""The re-proposal set O of a NEW-VIEW, computed the same way by primary and backups.

Rules (ADR 0008):
- The base is the highest checkpoint proved in the view-change set (genesis if none).
- For each height above it, the candidate is the strongest certificate any VIEW-CHANGE
  carries: a commit certificate outranks every prepared certificate; between prepared
  certificates the higher view wins; an exact tie between different blocks (impossible
  with at most f faulty validators) is broken by the larger block hash so that every
  correct replica computes the same O.
- O is the longest run of consecutive heights from base + 1 whose candidates chain by
  ``prev_hash``; it stops at the first height without a candidate or whose candidate does
  not extend the previous one, and never goes past base + ``window``. What lies beyond is
  proposed afresh in the new view. No null blocks: a correct replica prepares height h
  only once it prepared h - 1 in the same view (or knows h - 1 final), so every committed
  block lies inside that run (the ADR gives the argument).
- This module trusts its input: the replica verifies every signature and certificate of
  the view-change set before calling ``compute_o``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from consensus.messages import Checkpoint, ViewChange, header_hash
from ledger.records import BlockHeader

COMMITTED_RANK = 2**64
"""Rank of a committed block: above any view number."""


@dataclass(frozen=True, slots=True)
class Reproposal:
    """The outcome of ``compute_o``."""

    base_height: int
    """Height of the chosen checkpoint (0 = genesis)."""
    base_proof: tuple[Checkpoint, ...]
    """Its proof (empty for genesis)."""
    headers: tuple[BlockHeader, ...]
    """Headers to re-propose at base_height + 1, base_height + 2, ... (VIEW-CHANGEs carry
    headers only; the bodies are fetched by hash and checked against them)."""


def compute_o(view_changes: Sequence[ViewChange], base_hash_genesis: bytes,
              window: int) -> Reproposal:
    """O for a set of (already verified) view-change messages."""
    base_height, base_hash = 0, base_hash_genesis
    base_proof: tuple[Checkpoint, ...] = ()
    for vc in view_changes:
        if vc.checkpoint and vc.checkpoint[0].height > base_height:
            base_height, base_proof = vc.checkpoint[0].height, vc.checkpoint
            base_hash = vc.checkpoint[0].block_hash
    best: dict[int, tuple[int, bytes, BlockHeader]] = {}

    def offer(height: int, rank: int, header: BlockHeader) -> None:
        if height <= base_height or height > base_height + window:
            return
        candidate = (rank, header_hash(header), header)
        current = best.get(height)
        if current is None or candidate[:2] > current[:2]:
            best[height] = candidate

    for vc in view_changes:
        for prepared in vc.prepared:
            offer(prepared.height, prepared.view, prepared.proposal.header)
        for committed in vc.committed:
            offer(committed.height, COMMITTED_RANK, committed.header)
    headers: list[BlockHeader] = []
    prev_hash, height = base_hash, base_height + 1
    while height in best:
        header = best[height][2]
        if header.prev_hash != prev_hash:
            break
        headers.append(header)
        prev_hash, height = best[height][1], height + 1
    return Reproposal(base_height, base_proof, tuple(headers))

"""Deliberately broken replicas and Byzantine primaries, to show the checker catches bugs.

Rules: each class changes exactly one thing in ``consensus.replica.Replica`` and says
which rule it breaks. They live in tests only.
"""

from __future__ import annotations

from consensus.messages import NewView, ViewChange
from consensus.replica import Replica
from ledger.records import Block, BlockHeader, Vote


class DoubleCountReplica(Replica):
    """Breaks "votes from one sender never count twice": every copy of a vote counts."""

    copies = 0

    def _record_vote(self, bucket: dict[bytes, Vote], vote: Vote) -> bool:
        DoubleCountReplica.copies += 1
        bucket[vote.voter + DoubleCountReplica.copies.to_bytes(8, "big")] = vote
        return True


class NoOCheckReplica(Replica):
    """Breaks "backups recompute O and reject a NEW-VIEW that differs"."""

    def _o_matches(self, nv: NewView) -> bool:
        return True


class ForgetfulPrimary(Replica):
    """Byzantine primary of view 1 (and honest otherwise): its NEW-VIEW drops every
    re-proposal from O, and it proposes a fresh block at the first height above the
    checkpoint, even one it knows committed."""

    ATTACK_VIEW = 1

    def _compute_o(self, view_changes: tuple[ViewChange, ...]) -> tuple[BlockHeader, ...]:
        if self.view != self.ATTACK_VIEW:
            return super()._compute_o(view_changes)
        return ()

    def _next_proposal_height(self) -> int:
        if self.view != self.ATTACK_VIEW:
            return super()._next_proposal_height()
        height = self.low + 1
        while height in self.slots and self.slots[height].pre_prepare is not None:
            height += 1
        return height

    def _parent(self, height: int) -> tuple[bytes, int] | None:
        if self.view != self.ATTACK_VIEW or height - 1 not in self.committed or \
                height - 1 == self.low:
            return super()._parent(height)
        return None

    def _vote_acceptable(self, vote: Vote) -> bool:
        if self.view != self.ATTACK_VIEW:
            return super()._vote_acceptable(vote)
        return self.view_active and vote.view == self.view and vote.height > self.low


class NoBodyCheckReplica(Replica):
    """Breaks "never trust a block body": every body passes the block check."""

    def _body_valid(self, block: Block, parent_hash: bytes, parent_time_ms: int) -> bool:
        return True


class TrustingStatusReplica(Replica):
    """Breaks "only certified heights move the catch-up target": a STATUS claim does."""

    def _request_transfer(self, target: int, peers: tuple[bytes, ...], *,
                          certified: bool = True) -> None:
        super()._request_transfer(target, peers, certified=True)


class NoPreVoteReplica(Replica):
    """Breaks "leave a view only once f + 1 validators asked": the view timer alone starts
    the view change (a validator cut off alone drifts into a view nobody else joins)."""

    def on_view_timeout(self) -> None:
        if self.view_active and self.view_deadline is not None \
                and self.now >= self.view_deadline:
            self.view_deadline = None
            self._start_view_change(self.view + 1)
            return
        super().on_view_timeout()

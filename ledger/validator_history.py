"""Which validator set is in force at a height: the one rule, used by consensus, execution,
audit and receipts alike.

Rules:
- A validator set decided by executing block ``d`` (a governance transaction changed
  ``sys/validators``) takes effect at ``effective_height(d, K, D)``: one past the first
  checkpoint boundary (a multiple of ``K = checkpoint_interval``) at or after ``d + D``
  (``D = execution_lag``), the height whose header certifies the decision's result. The
  heights in flight therefore never straddle a change.
- Several decisions may fall before one boundary: the LAST one decided wins, as in the
  contracts' state (``sys/validators`` holds the last set written). This is safe because a
  decision at ``d`` that takes effect at ``E`` satisfies ``d <= E - 1 - D``: every replica
  has executed all of them before it must know the set of ``E``.
- Recording the same decision again (a replay after a restart) changes nothing; recording
  another set for an already recorded height replaces it (the chain is the authority).
- The history is a value: ``record`` returns a new history, so a copy handed to a reader
  never changes under it.
- Memory is bounded by ``DECISIONS_MAX``: a network that changes its validators more often
  than that over its whole life is not a municipal network; recording more raises.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger.errors import DecodeError, LedgerError
from ledger.genesis import Genesis
from ledger.records import ValidatorSet

DECISIONS_MAX = 4096
"""Most validator-set decisions one history holds (a few per year in practice)."""


def effective_height(decided_at: int, checkpoint_interval: int, execution_lag: int) -> int:
    """First height governed by a validator set decided by executing block ``decided_at``."""
    certified = decided_at + execution_lag
    boundary = -(-certified // checkpoint_interval) * checkpoint_interval
    return boundary + 1


@dataclass(frozen=True, slots=True)
class ValidatorHistory:
    """The genesis set and every later decision, with the effective-height rule."""

    genesis_set: ValidatorSet
    """The set in force from height 1."""
    checkpoint_interval: int
    """K: changes take effect one past a multiple of K."""
    execution_lag: int
    """D: a decision's result is certified D heights later."""
    decisions: tuple[tuple[int, ValidatorSet], ...] = ()
    """(decided_at, set), strictly increasing in ``decided_at``."""

    @staticmethod
    def from_genesis(genesis: Genesis) -> ValidatorHistory:
        params = genesis.consensus
        return ValidatorHistory(genesis.validator_set, params.checkpoint_interval,
                                params.execution_lag)

    def effective(self, decided_at: int) -> int:
        return effective_height(decided_at, self.checkpoint_interval, self.execution_lag)

    def record(self, decided_at: int, validators: ValidatorSet) -> ValidatorHistory:
        """The history with the set decided by executing block ``decided_at``."""
        if decided_at < 1:
            raise LedgerError(f"a validator set is decided by a block (height {decided_at})")
        kept = [(d, s) for d, s in self.decisions if d != decided_at]
        if len(kept) >= DECISIONS_MAX:
            raise LedgerError(f"more than {DECISIONS_MAX} validator-set decisions")
        kept.append((decided_at, validators))
        kept.sort(key=lambda item: item[0])
        return ValidatorHistory(self.genesis_set, self.checkpoint_interval,
                                self.execution_lag, tuple(kept))

    def changes(self) -> tuple[tuple[int, ValidatorSet], ...]:
        """(effective height, set) of each change, increasing; the last decision before a
        boundary wins, and a decision that does not change the set is not a change."""
        by_start: dict[int, ValidatorSet] = {}
        for decided_at, validators in self.decisions:
            by_start[self.effective(decided_at)] = validators
        out: list[tuple[int, ValidatorSet]] = []
        current = self.genesis_set
        for start in sorted(by_start):
            if by_start[start] != current:
                current = by_start[start]
                out.append((start, current))
        return tuple(out)

    def at(self, height: int) -> ValidatorSet:
        """The set in force at ``height`` (as far as the recorded decisions go)."""
        current = self.genesis_set
        for decided_at, validators in self.decisions:
            if self.effective(decided_at) <= height:
                current = validators
        return current

    def ever_member(self, key: bytes) -> bool:
        """``key`` was a validator at some height (genesis or any decision)."""
        return key in self.genesis_set.keys or any(key in s.keys for _, s in self.decisions)

    def decided_up_to(self, height: int) -> ValidatorHistory:
        """The history as it was once block ``height`` had executed."""
        return ValidatorHistory(self.genesis_set, self.checkpoint_interval,
                                self.execution_lag,
                                tuple((d, s) for d, s in self.decisions if d <= height))

    # ------------------------------------------------------------------ encoding

    def decisions_value(self) -> list[list[object]]:
        """The decisions as a canonical-encodable value: ``[[decided_at, set], ...]``."""
        return [[d, s.to_value()] for d, s in self.decisions]

    def with_decisions_value(self, value: object) -> ValidatorHistory:
        """This history's genesis and parameters with decisions decoded from ``value``;
        raises ``DecodeError`` on anything else."""
        if not isinstance(value, list) or len(value) > DECISIONS_MAX:
            raise DecodeError("validator history: expected an array of decisions")
        history = ValidatorHistory(self.genesis_set, self.checkpoint_interval,
                                   self.execution_lag)
        previous = 0
        for item in value:
            if (not isinstance(item, list) or len(item) != 2 or not isinstance(item[0], int)
                    or item[0] <= previous):
                raise DecodeError("validator history: decisions must be [height, set], "
                                  "strictly increasing in height")
            previous = item[0]
            history = history.record(item[0], ValidatorSet.from_value(item[1]))
        return history

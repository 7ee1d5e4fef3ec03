"""Which validator set, and which governed consensus parameters, are in force at a height:
the one rule, used by consensus, execution, audit and receipts alike.

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
- Governed consensus parameters (``GOVERNED_PARAMETERS``: block limits and the view
  timeout, changed by a governance ``set_parameter``) follow the same rule, with their own
  decisions: a value decided by block ``d`` governs heights from ``effective_height(d)``,
  so every replica applies a raised timeout or block limit at the same height.
- Memory is bounded by ``DECISIONS_MAX``: a network that changes its validators more often
  than that over its whole life is not a municipal network; recording more raises.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TypeVar

from ledger.errors import DecodeError, LedgerError
from ledger.genesis import ConsensusParams, Genesis
from ledger.records import ValidatorSet

DECISIONS_MAX = 4096
"""Most validator-set (or parameter) decisions one history holds (a few per year)."""
DEFAULT_PARAMS = ConsensusParams()
"""Parameters of a history built without a genesis (tests of the rule itself)."""
GOVERNED_PARAMETERS = ("block_txs_max", "block_bytes_max", "view_timeout_ms")
"""The consensus parameters governance may change (``contracts.governance.PARAMETERS``)."""

Governed = tuple[int, int, int]
"""Values of ``GOVERNED_PARAMETERS``, in that order."""
_T = TypeVar("_T")


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
    genesis_params: ConsensusParams = DEFAULT_PARAMS
    """The consensus parameters of genesis (the governed ones until a decision)."""
    param_decisions: tuple[tuple[int, Governed], ...] = ()
    """(decided_at, governed values), strictly increasing in ``decided_at``."""

    @staticmethod
    def from_genesis(genesis: Genesis) -> ValidatorHistory:
        params = genesis.consensus
        return ValidatorHistory(genesis.validator_set, params.checkpoint_interval,
                                params.execution_lag, genesis_params=params)

    def effective(self, decided_at: int) -> int:
        return effective_height(decided_at, self.checkpoint_interval, self.execution_lag)

    @staticmethod
    def _recorded(decisions: tuple[tuple[int, _T], ...], decided_at: int,
                  value: _T) -> tuple[tuple[int, _T], ...]:
        if decided_at < 1:
            raise LedgerError(f"a decision is made by a block (height {decided_at})")
        kept = [(d, v) for d, v in decisions if d != decided_at]
        if len(kept) >= DECISIONS_MAX:
            raise LedgerError(f"more than {DECISIONS_MAX} governance decisions")
        kept.append((decided_at, value))
        kept.sort(key=lambda item: item[0])
        return tuple(kept)

    def _in_force(self, decisions: tuple[tuple[int, _T], ...], default: _T,
                  height: int) -> _T:
        current = default
        for decided_at, value in decisions:
            if self.effective(decided_at) <= height:
                current = value
        return current

    def record(self, decided_at: int, validators: ValidatorSet) -> ValidatorHistory:
        """The history with the set decided by executing block ``decided_at``."""
        return replace(self, decisions=self._recorded(self.decisions, decided_at, validators))

    def record_params(self, decided_at: int, values: Governed) -> ValidatorHistory:
        """The history with the governed parameter values decided by block ``decided_at``."""
        return replace(self, param_decisions=self._recorded(self.param_decisions,
                                                            decided_at, values))

    def params_at(self, height: int) -> ConsensusParams:
        """The consensus parameters governing ``height``."""
        values = self._in_force(self.param_decisions, None, height)
        if values is None:
            return self.genesis_params
        return replace(self.genesis_params, **dict(zip(GOVERNED_PARAMETERS, values,
                                                       strict=True)))

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
        return self._in_force(self.decisions, self.genesis_set, height)

    def ever_member(self, key: bytes) -> bool:
        """``key`` was a validator at some height (genesis or any decision)."""
        return key in self.genesis_set.keys or any(key in s.keys for _, s in self.decisions)

    def decided_up_to(self, height: int) -> ValidatorHistory:
        """The history as it was once block ``height`` had executed."""
        return replace(self, decisions=tuple((d, s) for d, s in self.decisions if d <= height),
                       param_decisions=tuple((d, v) for d, v in self.param_decisions
                                             if d <= height))

    # ------------------------------------------------------------------ encoding

    def decisions_value(self) -> list[list[object]]:
        """Every decision as a canonical-encodable value: ``[[[decided_at, set], ...],
        [[decided_at, [governed values]], ...]]``."""
        return [[[d, s.to_value()] for d, s in self.decisions],
                [[d, list(v)] for d, v in self.param_decisions]]

    def with_decisions_value(self, value: object) -> ValidatorHistory:
        """This history's genesis and parameters with the decisions decoded from ``value``
        (the form of ``decisions_value``); raises ``DecodeError`` on anything else."""
        if not isinstance(value, list) or len(value) != 2:
            raise DecodeError("validator history: expected [set decisions, parameter decisions]")
        history = replace(self, decisions=(), param_decisions=())
        for d, item in _decisions(value[0]):
            history = history.record(d, ValidatorSet.from_value(item))
        for d, item in _decisions(value[1]):
            if (not isinstance(item, list) or len(item) != len(GOVERNED_PARAMETERS)
                    or not all(isinstance(x, int) and x > 0 for x in item)):
                raise DecodeError("validator history: governed values must be "
                                  f"{len(GOVERNED_PARAMETERS)} positive integers")
            history = history.record_params(d, (item[0], item[1], item[2]))
        return history


def _decisions(value: object) -> list[tuple[int, object]]:
    if not isinstance(value, list) or len(value) > DECISIONS_MAX:
        raise DecodeError("validator history: expected an array of decisions")
    out: list[tuple[int, object]] = []
    for item in value:
        if (not isinstance(item, list) or len(item) != 2 or not isinstance(item[0], int)
                or isinstance(item[0], bool) or item[0] <= (out[-1][0] if out else 0)):
            raise DecodeError("validator history: decisions must be [height, value], "
                              "strictly increasing in height")
        out.append((item[0], item[1]))
    return out

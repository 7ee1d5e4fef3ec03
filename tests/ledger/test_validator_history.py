"""ledger.validator_history: the one rule for the validator set in force at a height, and
the node's history rebuilt from its store after a restart."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.crypto import SigningKey
from ledger.encoding import encode
from ledger.errors import CorruptionError, DecodeError
from ledger.layout import HISTORY_MARK
from ledger.records import ValidatorSet
from ledger.validator_history import ValidatorHistory, effective_height
from node.chain import Chain
from testkit.populate import build_on_disk

KEYS = [SigningKey(bytes([0x40 + i]) * 32).public_key for i in range(6)]
FOUR = ValidatorSet.of(KEYS[:4])
FIVE = ValidatorSet.of(KEYS[:5])
OTHER_FOUR = ValidatorSet.of(KEYS[1:5])
K, D = 8, 2


def _history() -> ValidatorHistory:
    return ValidatorHistory(FOUR, K, D)


def test_a_change_takes_effect_one_past_the_boundary_that_certifies_it() -> None:
    h = _history().record(6, FIVE)  # certified by header 8, a boundary: in force from 9
    assert [h.at(x) for x in (1, 8, 9, 100)] == [FOUR, FOUR, FIVE, FIVE]
    assert h.changes() == ((9, FIVE),)
    assert effective_height(7, K, D) == 17  # 7 + 2 = 9 > 8: the next boundary, 16


def test_the_last_decision_before_a_boundary_wins_as_in_the_contracts_state() -> None:
    """Two governance decisions before one boundary: ``sys/validators`` holds the last one
    written, so consensus, execution and audit must all take the last."""
    h = _history().record(4, FIVE).record(6, OTHER_FOUR)
    assert h.at(9) == OTHER_FOUR
    assert h.changes() == ((9, OTHER_FOUR),)


def test_recording_a_decision_again_changes_nothing() -> None:
    once = _history().record(6, FIVE)
    assert once.record(6, FIVE) == once


def test_decisions_round_trip_and_bad_values_are_refused() -> None:
    h = _history().record(3, FIVE).record(20, OTHER_FOUR)
    assert _history().with_decisions_value(h.decisions_value()) == h
    h = h.record_params(5, (100, 4096, 900))
    assert _history().with_decisions_value(h.decisions_value()) == h
    bad: object
    for bad in ([[[3, FIVE.to_value()], [3, FOUR.to_value()]], []],
                [[["3", FIVE.to_value()]], []], {"3": 1}, [[[3]], []], [[], [[5, [1, 2]]]],
                [[], [[5, [1, 2, -3]]]], [[]]):
        with pytest.raises(DecodeError):
            _history().with_decisions_value(bad)


@given(st.lists(st.tuples(st.integers(1, 60), st.sampled_from([FOUR, FIVE, OTHER_FOUR])),
                max_size=8), st.integers(1, 80))
def test_at_agrees_with_a_naive_replay_of_the_rule(decisions: list[tuple[int, ValidatorSet]],
                                                   height: int) -> None:
    history = _history()
    latest: dict[int, ValidatorSet] = {}
    for decided_at, vset in decisions:
        history = history.record(decided_at, vset)
        latest[decided_at] = vset
    expected = FOUR
    for decided_at in sorted(latest):  # the last decided set whose effect has begun
        if effective_height(decided_at, K, D) <= height:
            expected = latest[decided_at]
    assert history.at(height) == expected


def test_the_node_rebuilds_its_history_from_the_store(tmp_path: Path) -> None:
    """Restart-safety: after a crash between execution and the history cache write (or with
    the cache lost), the node finds every validator-set change again from its state."""
    data = tmp_path / "data"
    builder = build_on_disk([data], 120)
    assert builder.validator_changes, "the generated chain changes its validators"
    expected = builder.history
    chain = Chain.open(data, builder.net.genesis)
    try:
        assert chain.history.changes() == expected.changes() != ()
        # A cache written before the changes (a crash right after execution).
        chain.store.kv.put(HISTORY_MARK, encode([1, [[], []]]))
    finally:
        chain.close()
    chain = Chain.open(data, builder.net.genesis)
    try:
        assert chain.history.changes() == expected.changes()
        chain.store.kv.put(HISTORY_MARK, b"\xc1")  # not msgpack
    finally:
        chain.close()
    with pytest.raises(CorruptionError, match="validator-history cache is damaged"):
        Chain.open(data, builder.net.genesis).close()


def test_governed_parameters_follow_the_same_effective_height_rule() -> None:
    """Raising the view timeout by governance: every replica applies it at the same
    height, one past the boundary that certifies the decision."""
    h = _history().record_params(6, (500, 1 << 20, 9_000))
    assert h.params_at(8).view_timeout_ms == h.genesis_params.view_timeout_ms
    assert h.params_at(9).view_timeout_ms == 9_000
    assert h.params_at(9).block_txs_max == 500
    assert h.params_at(9).checkpoint_interval == h.genesis_params.checkpoint_interval
    assert h.record_params(7, (600, 1 << 20, 9_000)).params_at(17).block_txs_max == 600


def test_a_key_rotation_swaps_the_key_at_the_boundary_and_the_old_key_stops_counting() -> None:
    rotated = ValidatorSet.of([*KEYS[1:4], KEYS[5]])  # KEYS[0] replaced by KEYS[5]
    history = _history().record(3, rotated)
    start = effective_height(3, K, D)
    assert KEYS[0] in history.at(start - 1).keys and KEYS[5] not in history.at(start - 1).keys
    assert KEYS[5] in history.at(start).keys and KEYS[0] not in history.at(start).keys
    assert history.at(start).n == 4  # a rotation, not an addition: the quorum is unchanged
    assert history.ever_member(KEYS[0])  # its older certificates still verify

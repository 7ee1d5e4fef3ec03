"""Persist before send, with one disk flush per group of events (node.runtime rules)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from consensus.events import Broadcast, Effect, Persist, PersistRecord, Send, SetTimer
from node.runtime import split_persists

_records = st.builds(PersistRecord, st.binary(min_size=1, max_size=4),
                     st.none() | st.binary(max_size=4))
_effects = st.lists(st.one_of(
    st.builds(Persist, _records),
    st.builds(Broadcast, st.binary(max_size=4)),
    st.builds(Send, st.binary(min_size=1, max_size=4), st.binary(max_size=4)),
    st.builds(SetTimer, st.sampled_from(["view", "heartbeat"]), st.integers(0, 10**6)),
), max_size=30)


@given(_effects)
def test_every_record_is_written_before_any_other_effect_and_nothing_is_reordered(
        effects: list[Effect]) -> None:
    records, others = split_persists(effects)
    # Carried out as: one batch of the records, then the others.
    carried = [*(Persist(r) for r in records), *others]
    assert sorted(map(repr, carried)) == sorted(map(repr, effects))  # nothing lost or added
    assert list(records) == [e.record for e in effects if isinstance(e, Persist)]
    assert list(others) == [e for e in effects if not isinstance(e, Persist)]
    for index, effect in enumerate(effects):  # every record precedes what followed it
        if isinstance(effect, Persist):
            assert all(carried.index(later) >= len(records) for later in effects[index + 1:]
                       if not isinstance(later, Persist))


def test_a_group_with_a_checkpoint_clean_up_is_one_flush() -> None:
    deletes = [Persist(PersistRecord(b"p/vote/%d" % h, None)) for h in range(40)]
    vote = Broadcast(b"commit")
    view = Persist(PersistRecord(b"p/view", b"1"))
    records, others = split_persists([*deletes, vote, view])
    assert records == (*(d.record for d in deletes), view.record) and others == (vote,)
